# The image tier (`make images`, `make test-images`): podman (Debian's package, rootful, with its Docker-compatible
# API socket for docker-compose), runc (its runtime here: deploy/docker/podman-env.sh) and debootstrap (the Debian
# base image built locally when no registry is reachable). docker-compose comes with 30-deploy-checkers.sh.
# Sourced by tools/install-deps.sh with `say` in scope. A no-op when all are there.
images_apt=()
command -v podman >/dev/null 2>&1 || images_apt+=(podman)
command -v runc >/dev/null 2>&1 || images_apt+=(runc)
command -v debootstrap >/dev/null 2>&1 || images_apt+=(debootstrap)
if [ "${#images_apt[@]}" -gt 0 ]; then
  say "installing ${images_apt[*]} from Debian's packages (OCI images without a registry)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${images_apt[@]}" >/dev/null
fi
say "podman: $(podman --version 2>/dev/null); debootstrap: $(debootstrap --version 2>/dev/null)"
