#!/bin/sh
# Migrate step of the demo app: run once per deploy in the release
# directory, before the switch, as: sh migrate.sh <shared_path>
# A real app would run e.g. "prisma migrate deploy" or "flask db upgrade".
# The demo only records which release last migrated the (imaginary) database.
set -eu

shared=$1
printf '%s\n' "$(cat VERSION)" >"$shared/schema_release"
echo "migrated the demo database for release $(cat VERSION)"
