#!/bin/sh
# Health check of the demo app, run after the restart as:
#   sh <current_path>/healthcheck.sh <shared_path>
# Exit 0 means healthy. It fails unless the release the "app" runs is the one
# current points at and that release's build reported ok.
set -eu

here=$(dirname "$0")
shared=$1

if [ "$(cat "$here/healthz" 2>/dev/null)" != ok ]; then
	echo "unhealthy: $here/healthz does not say ok" >&2
	exit 1
fi
if [ "$(cat "$shared/running" 2>/dev/null)" != "$(cat "$here/VERSION")" ]; then
	echo "unhealthy: the running release is not the current one" >&2
	exit 1
fi
echo "healthy: release $(cat "$here/VERSION")"
