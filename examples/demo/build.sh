#!/bin/sh
# Build step of the demo app. shipbot runs it inside the new release
# directory as: sh build.sh <release> <ref>
#
# The demo has nothing to compile, so the ref is used as a switch to show
# what shipbot does when things go wrong:
#   bad-build   the build fails: nothing is switched, the release is removed
#   bad-health  the build "succeeds" but the health check fails afterwards:
#               shipbot switches back to the previous release
#   slow        the build takes 30 s: time enough to try /cancel
set -eu

release=$1
ref=${2:-}

echo "building demo release $release from ref ${ref:-(none)}"

case $ref in
bad-build)
	echo "build failed on purpose (ref bad-build)" >&2
	exit 1
	;;
slow)
	echo "sleeping 30 s (ref slow); try /cancel"
	sleep 30
	;;
esac

printf '%s\n' "$release" >VERSION
printf '%s\n' "$ref" >REF
if [ "$ref" = bad-health ]; then
	echo broken >healthz
else
	echo ok >healthz
fi
echo "built $release"
