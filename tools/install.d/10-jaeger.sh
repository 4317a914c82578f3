# Jaeger (v2: OTLP in on 4317/4318, query API on 16686), built from the Go module proxy at JAEGER_VERSION.
# Used by `make demo` and the e2e tests to read back the traces the services export. Cold build: 5-15 minutes, once.
# Jaeger's go.mod has replace directives, so `go install pkg@version` refuses it: the module is downloaded through the
# proxy (checksummed against sum.golang.org) and built from a copy of its source as the main module.
# Sourced by tools/install-deps.sh with `cache`, `say` and versions.env in scope.
jaeger_bin="$cache/jaeger/$JAEGER_VERSION/jaeger"
if [ ! -x "$jaeger_bin" ]; then
  command -v go >/dev/null 2>&1 || { echo "Go is needed to build Jaeger; install Go 1.26+" >&2; exit 1; }
  say "building Jaeger $JAEGER_VERSION from the Go module proxy (cold: 5-15 minutes, once)"
  jaeger_src="$(cd /tmp && go mod download -json "github.com/jaegertracing/jaeger@$JAEGER_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -d "$jaeger_src" ] || { echo "could not download github.com/jaegertracing/jaeger@$JAEGER_VERSION" >&2; exit 1; }
  jaeger_work="$(mktemp -d)"
  cp -r "$jaeger_src/." "$jaeger_work/"
  chmod -R u+w "$jaeger_work"
  mkdir -p "$(dirname "$jaeger_bin")"
  (cd "$jaeger_work" && GOFLAGS=-mod=mod go build -trimpath -o "$jaeger_bin.partial" ./cmd/jaeger) \
    || { rm -rf "$jaeger_work"; echo "building Jaeger $JAEGER_VERSION failed" >&2; exit 1; }
  mv "$jaeger_bin.partial" "$jaeger_bin"
  rm -rf "$jaeger_work"
fi
say "Jaeger $JAEGER_VERSION: $jaeger_bin"
