#!/bin/sh
# Restart step of the demo app, run in the current release directory after
# the switch (and again after a switch back) as: sh restart.sh <shared_path>
# A real app would run e.g. "sudo systemctl restart helpdesk".
# The demo "starts" by writing which release runs into shared/running and a
# line into app.log, a shared file, so the log survives from one release to
# the next and /logs can show it.
set -eu

shared=$1
version=$(cat VERSION)
printf '%s\n' "$version" >"$shared/running"
printf '%s demo started release %s (ref %s)\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$version" "$(cat REF)" >>app.log
echo "demo now runs release $version"
