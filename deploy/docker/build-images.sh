#!/usr/bin/env bash
# Builds the opsbus service images with podman, without any image registry (`make images`):
#   1. a Debian base image from debootstrap (deploy/docker/base-image.sh, cached under ~/.cache/opsbus/images),
#   2. a uv image holding the uv binary of PyPI's wheel at UV_VERSION (tools/versions.env), cached likewise,
#   3. the dependency images, from deploy/docker/Dockerfile's `deps` and `deps-optimizer` stages: opsbus-deps:<key>
#      (the base, the user, the third-party virtualenv of every service) and opsbus-deps-optimizer:<key> (plus the
#      optimizer's numerical stack), <key> hashing the lock, the members' pyproject.toml, the Dockerfile and the base
#      images: built only when that key is new, otherwise taken from podman's store as they are,
#   4. every service image FROM its dependency image (build argument DEPS_IMAGE) with --pull=never, adding one thin
#      layer of opsbus code, tagged opsbus-<service>:<key> and opsbus-<service>:dev, where <key> hashes that image's
#      inputs (see key_of): an image whose key exists is not rebuilt, so a warm run costs seconds, and a code change
#      costs seconds per image (no dependency install, no virtualenv copied or hashed).
#
#   deploy/docker/build-images.sh [service ...]        (default: all seven; run from anywhere, needs root + podman)
#
# Environment:
#   OPSBUS_EXTRA_CA     a CA bundle to trust while downloading packages (TLS-intercepting proxy); passed as the build
#                       secret `extra_ca`, never stored in a layer. Default: $SSL_CERT_FILE when that file exists.
#   OPSBUS_IMAGE_BASE   `debian` (default: the debootstrap base) or `public` (the Dockerfile's defaults, pulled).
#   OPSBUS_IMAGES_REBUILD=1  build the service images even when their key exists, without podman's layer cache (e.g.
#                       after a CA change); `all` rebuilds the dependency images too (a cold dependency install).
#   OPSBUS_CACHE_DIR    default ~/.cache/opsbus.
# The gateway image carries the console built by `make console` (services/gateway/src/opsbus/gateway/console).
# Prints one line per image: name, key, size, seconds spent building (0 when cached); the dependency images first.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=../../tools/versions.env
source "$root/tools/versions.env"
cache="${OPSBUS_CACHE_DIR:-$HOME/.cache/opsbus}/images"
services=("$@")
[ "${#services[@]}" -gt 0 ] || services=(gateway watcher healer optimizer deployer notifier analyzer)
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
command -v podman >/dev/null || { echo "podman is missing: make setup installs it" >&2; exit 1; }
# shellcheck source=podman-env.sh
source "$here/podman-env.sh"

if [ ! -f "$root/services/gateway/src/opsbus/gateway/console/index.html" ]; then
  echo "the console is not built (services/gateway/src/opsbus/gateway/console): run make console first" >&2
  exit 1
fi

build_args=()
if [ "${OPSBUS_IMAGE_BASE:-debian}" = debian ]; then
  base="$(bash "$here/base-image.sh" bookworm)"
  uv_image="localhost/opsbus-uv:$UV_VERSION"
  if ! podman image exists "$uv_image"; then
    wheels="$cache/uv-$UV_VERSION"
    mkdir -p "$wheels"
    say "downloading uv $UV_VERSION from PyPI"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_17_x86_64 \
      --python-version 3.11 --dest "$wheels" "uv==$UV_VERSION"
    unpacked="$(mktemp -d)"
    python3 - "$wheels" "$unpacked" <<'PY'
import pathlib, stat, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("uv-*.whl"))
with zipfile.ZipFile(wheel) as archive:
    member = next(n for n in archive.namelist() if n.endswith(".data/scripts/uv"))
    target = pathlib.Path(sys.argv[2]) / "uv"
    target.write_bytes(archive.read(member))
    target.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
PY
    tar -C "$unpacked" --owner=0 --group=0 -cf "$unpacked/uv.tar" uv
    podman import "$unpacked/uv.tar" "$uv_image" >&2
    rm -rf "$unpacked"
  fi
  build_args+=(--build-arg "BASE_IMAGE=$base" --build-arg "UV_IMAGE=$uv_image")
  base_ids="$(podman image inspect --format '{{.Id}}' "$base" "$uv_image" | tr '\n' ' ')"
else
  base_ids="public"
fi

# A key hashes what an image's content depends on. A dependency image: the workspace's metadata (every member's
# pyproject.toml, the lock), the Dockerfile and the base images. A service image: its dependency image's key, libs/
# (opsbus-common) and its own service's sources (the gateway's include the built console). Services never import each
# other, so a change to one service rebuilds only its image; a change to opsbus code rebuilds no dependency image.
hash_files() {
  (
    cd "$root"
    find "$@" -type f \
      ! -path '*/tests/*' ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*/.mypy_cache/*' \
      ! -path '*/.ruff_cache/*' ! -path '*/.pytest_cache/*' -print0 \
      | sort -zu | xargs -0 sha256sum
  )
}
deps_key="$({ hash_files pyproject.toml uv.lock .dockerignore deploy/docker/Dockerfile deploy/docker/with-extra-ca.sh \
  services/*/pyproject.toml \
  tools/*/pyproject.toml libs/common/pyproject.toml; echo "$base_ids"; } | sha256sum | cut -c1-16)"
key_of() {
  { hash_files libs "services/$1"; echo "$deps_key"; } | sha256sum | cut -c1-16
}
deps_of() {
  if [ "$1" = optimizer ]; then echo deps-optimizer; else echo deps; fi
}

extra_ca="${OPSBUS_EXTRA_CA:-}"
if [ -z "$extra_ca" ] && [ -n "${SSL_CERT_FILE:-}" ] && [ -s "$SSL_CERT_FILE" ]; then
  extra_ca="$SSL_CERT_FILE"
fi
secret_file="$(mktemp)"  # empty unless a bundle is given: the secret mount then adds nothing
trap 'rm -f "$secret_file"' EXIT
[ -z "$extra_ca" ] || cat "$extra_ca" > "$secret_file"
rebuild="${OPSBUS_IMAGES_REBUILD:-0}"

# build IMAGE KEY REBUILD PODMAN-BUILD-ARGS...: podman build unless IMAGE:KEY exists, tag :dev, print the line.
build() {
  local image="$1" key="$2" again="$3" started=$SECONDS
  shift 3
  if [ "$again" = 1 ] || ! podman image exists "$image:$key"; then
    say "building $image:$key"
    local flags=(--pull=never)
    [ "${OPSBUS_IMAGE_BASE:-debian}" = debian ] || flags=(--pull=missing)
    [ "$again" = 1 ] && flags+=(--no-cache)
    podman build "${flags[@]}" --format docker --layers --file "$root/deploy/docker/Dockerfile" \
      "${build_args[@]}" --secret "id=extra_ca,src=$secret_file" \
      --label "org.opsbus.inputs=$key" --tag "$image:$key" "$@" "$root" >&2
  fi
  podman tag "$image:$key" "$image:dev"
  size="$(podman image inspect --format '{{.Size}}' "$image:$key")"
  printf '%s %s %s %s\n' "${image#localhost/}" "$key" "$size" "$((SECONDS - started))"
}

deps_rebuild=0
[ "$rebuild" = all ] && deps_rebuild=1
needed=()
for service in "${services[@]}"; do needed+=("$(deps_of "$service")"); done
build localhost/opsbus-deps "$deps_key" "$deps_rebuild" --target deps
if printf '%s\n' "${needed[@]}" | grep -qx deps-optimizer; then
  build localhost/opsbus-deps-optimizer "$deps_key" "$deps_rebuild" --target deps-optimizer \
    --build-arg "DEPS_BASE=localhost/opsbus-deps:$deps_key"
fi

service_rebuild=0
[ "$rebuild" = 0 ] || service_rebuild=1
for service in "${services[@]}"; do
  build "localhost/opsbus-$service" "$(key_of "$service")" "$service_rebuild" --build-arg "SERVICE=$service" \
    --build-arg "DEPS_IMAGE=localhost/opsbus-$(deps_of "$service"):$deps_key"
done
