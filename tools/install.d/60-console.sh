# The web console's npm dependencies (console/package-lock.json) with Debian's Node: `npm ci`, only when the
# lock file changed since the last install (a stamp in node_modules). npm's own cache (~/.npm) keeps the
# packages. Sourced by tools/install-deps.sh with `root` and `say` in scope.
console_dir="$root/console"
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is needed to build the console: install Debian's nodejs and npm (Node >= 20.19)" >&2
  exit 1
fi
console_lock="$(sha256sum "$console_dir/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$console_dir/node_modules/.opsbus-lock" 2>/dev/null)" != "$console_lock" ]; then
  say "installing the console's npm dependencies (npm ci, pinned by package-lock.json)"
  (cd "$console_dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$console_lock" >"$console_dir/node_modules/.opsbus-lock"
fi
say "console: node $(node --version), npm $(npm --version), dependencies from package-lock.json"
