# Chromium from Debian's packages: the browser tests (tests/browser) drive it with Playwright's
# `executable_path`, so no browser is ever downloaded. Sourced by tools/install-deps.sh with `say` in scope.
# A no-op when chromium is there.
if ! command -v chromium >/dev/null 2>&1; then
  say "installing chromium from Debian's packages (browser tests of the console)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
say "chromium: $(chromium --version 2>/dev/null | head -n 1)"
