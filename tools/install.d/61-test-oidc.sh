# The OIDC provider the SSO tests start (tests/browser/oidc: the certified `oidc-provider` from npm, pinned by
# its package-lock.json) with Debian's Node: `npm ci`, only when the lock file changed since the last install.
# Sourced by tools/install-deps.sh after 60-console.sh (which checked that npm is there).
oidc_dir="$root/tests/browser/oidc"
oidc_lock="$(sha256sum "$oidc_dir/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$oidc_dir/node_modules/.opsbus-lock" 2>/dev/null)" != "$oidc_lock" ]; then
  say "installing the test OIDC provider (npm ci, pinned by tests/browser/oidc/package-lock.json)"
  (cd "$oidc_dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$oidc_lock" >"$oidc_dir/node_modules/.opsbus-lock"
fi
