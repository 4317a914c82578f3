#!/usr/bin/env bash
# Installs what opsbus needs to build and test, pinned, caching heavy builds outside the repo.
#   - uv (the Python package manager) at UV_VERSION, if missing
#   - the Python workspace (uv sync against uv.lock)
#   - nats-server at NATS_SERVER_VERSION, built from source through the Go module proxy (about 1 minute cold)
#   - PostgreSQL server binaries from Debian's packages, if none are installed
#   - whatever tools/install.d/*.sh add (one file per tool, each pinned in versions.env and cached)
# Safe to run again: every step is skipped when its result is already there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${OPSBUS_CACHE_DIR:-$HOME/.cache/opsbus}"
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if ! command -v uv >/dev/null 2>&1; then
  say "installing uv $UV_VERSION from PyPI"
  python3 -m pip install --quiet "uv==$UV_VERSION"
fi

say "syncing the Python workspace (uv.lock)"
(cd "$root" && uv sync --frozen --all-packages --quiet)

nats_bin="$cache/nats-server/$NATS_SERVER_VERSION/nats-server"
if [ ! -x "$nats_bin" ]; then
  command -v go >/dev/null 2>&1 || { echo "Go is needed to build nats-server; install Go 1.26+" >&2; exit 1; }
  say "building nats-server $NATS_SERVER_VERSION from the Go module proxy (cold: about 1-2 minutes)"
  mkdir -p "$(dirname "$nats_bin")"
  (cd /tmp && GOBIN="$(dirname "$nats_bin")" GOFLAGS=-mod=mod go install "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION")
fi
say "nats-server: $nats_bin ($("$nats_bin" --version))"

pg_ctl_bin=""
for candidate in /usr/lib/postgresql/*/bin/pg_ctl; do
  [ -x "$candidate" ] && pg_ctl_bin="$candidate"
done
if [ -z "$pg_ctl_bin" ]; then
  say "installing PostgreSQL server from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
  for candidate in /usr/lib/postgresql/*/bin/pg_ctl; do
    [ -x "$candidate" ] && pg_ctl_bin="$candidate"
  done
fi
[ -n "$pg_ctl_bin" ] || { echo "PostgreSQL server binaries not found after install" >&2; exit 1; }
say "PostgreSQL: $("$pg_ctl_bin" --version)"

# One installer per extra tool (helm, jaeger, promtool, ...). Each is sourced in name order with `cache`, `say` and
# the versions in scope, and must be a no-op when its result is already there.
for installer in "$here"/install.d/*.sh; do
  [ -e "$installer" ] || continue
  # shellcheck source=/dev/null
  source "$installer"
done
