#!/usr/bin/env bash
# Runs every check and test of shipbot, including the integration tests against
# real OpenSSH, MariaDB and PostgreSQL. Installs what is missing (Debian
# packages), so it works on a fresh machine and in CI (CI=true, no stdin).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
STATICCHECK_VERSION=v0.8.2

step() { printf '\n== %s\n' "$*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

step "tools"
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v git >/dev/null || missing+=(git)
command -v mysqldump >/dev/null || missing+=(mariadb-client)
command -v pg_dump >/dev/null || missing+=(postgresql-client)
# systemd-analyze verifies configs/shipbot.service (configs/service_test.go).
command -v systemd-analyze >/dev/null || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq </dev/null
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi
# sshd refuses to start without its privilege-separation directory. The tests
# start their own sshd processes on loopback ports with generated keys.
as_root mkdir -p /run/sshd
# git refuses to work in repositories owned by another user in some CI clones.
git config --global --add safe.directory '*' 2>/dev/null || true

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt needed:"; echo "$unformatted"; exit 1; fi

step "go vet"
go vet ./...

step "staticcheck $STATICCHECK_VERSION"
go run "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" ./...

step "go test -race (unit + integration)"
export SHIPBOT_REQUIRE_INTEGRATION=1
go test -race -count=1 -timeout 9m ./...
