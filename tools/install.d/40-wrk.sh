# wrk (Debian's wrk package): the HTTP load generator bench/gateway_load.py runs in its own process.
# Sourced by tools/install-deps.sh with `say` in scope. A no-op when wrk is there.
if ! command -v wrk >/dev/null 2>&1; then
  say "installing wrk from Debian's packages (load generator for bench/gateway_load.py)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
say "wrk: $(wrk --version 2>&1 | head -n 1)"
