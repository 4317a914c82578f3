# helm, built from the Go module proxy at HELM_VERSION into $cache/helm/<version>/helm. Used by tests/deploy
# (helm lint, helm template) and by anyone installing the chart from this repo. Cold build: 3-10 minutes, once.
# Sourced by tools/install-deps.sh with `cache`, `say` and versions.env in scope.
helm_bin="$cache/helm/$HELM_VERSION/helm"
if [ ! -x "$helm_bin" ]; then
  command -v go >/dev/null 2>&1 || { echo "Go is needed to build helm; install Go 1.26+" >&2; exit 1; }
  say "building helm $HELM_VERSION from the Go module proxy (cold: 3-10 minutes, once)"
  mkdir -p "$(dirname "$helm_bin")"
  (cd /tmp && GOBIN="$(dirname "$helm_bin")" GOFLAGS=-mod=mod go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") \
    || { echo "building helm $HELM_VERSION failed" >&2; exit 1; }
fi
say "helm: $helm_bin ($("$helm_bin" version --short))"
