#!/usr/bin/env bash
# Builds the opsbus service images with podman, without any image registry (`make images`):
#   1. a Debian base image from debootstrap (deploy/docker/base-image.sh, cached under ~/.cache/opsbus/images),
#   2. a uv image holding the uv binary of PyPI's wheel at UV_VERSION (tools/versions.env), cached likewise,
#   3. every service image from deploy/docker/Dockerfile with --pull=never, tagged opsbus-<service>:<key> and
#      opsbus-<service>:dev, where <key> hashes that image's inputs (see key_of): an image whose key exists is not
#      rebuilt, so a warm run costs seconds. The first image built installs the third-party dependencies of all
#      seven; the other six take that layer from podman's layer cache and add only their own code.
#
#   deploy/docker/build-images.sh [service ...]        (default: all seven; run from anywhere, needs root + podman)
#
# Environment:
#   OPSBUS_EXTRA_CA     a CA bundle to trust while downloading packages (TLS-intercepting proxy); passed as the build
#                       secret `extra_ca`, never stored in a layer. Default: $SSL_CERT_FILE when that file exists.
#   OPSBUS_IMAGE_BASE   `debian` (default: the debootstrap base) or `public` (the Dockerfile's defaults, pulled).
#   OPSBUS_IMAGES_REBUILD=1  build even when the key exists, without podman's layer cache (e.g. after a CA change).
#   OPSBUS_CACHE_DIR    default ~/.cache/opsbus.
# The gateway image carries the console built by `make console` (services/gateway/src/opsbus/gateway/console).
# Prints one line per image: name, key, size, seconds spent building (0 when cached).
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

# An image's key hashes what its content depends on: the workspace's metadata (every member's pyproject.toml, the
# lock), libs/ (opsbus-common), its own service's sources (the gateway's include the built console), the Dockerfile
# and the base images. Services never import each other, so a change to one service rebuilds only its image.
key_of() {
  (
    cd "$root"
    {
      find pyproject.toml uv.lock .dockerignore deploy/docker/Dockerfile libs "services/$1" \
        services/*/pyproject.toml tools/*/pyproject.toml -type f \
        ! -path '*/tests/*' ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*/.mypy_cache/*' \
        ! -path '*/.ruff_cache/*' ! -path '*/.pytest_cache/*' -print0 \
        | sort -zu | xargs -0 sha256sum
      echo "$base_ids"
    } | sha256sum | cut -c1-16
  )
}

extra_ca="${OPSBUS_EXTRA_CA:-}"
if [ -z "$extra_ca" ] && [ -n "${SSL_CERT_FILE:-}" ] && [ -s "$SSL_CERT_FILE" ]; then
  extra_ca="$SSL_CERT_FILE"
fi
secret_file="$(mktemp)"  # empty unless a bundle is given: the secret mount then adds nothing
trap 'rm -f "$secret_file"' EXIT
[ -z "$extra_ca" ] || cat "$extra_ca" > "$secret_file"

for service in "${services[@]}"; do
  image="localhost/opsbus-$service"
  key="$(key_of "$service")"
  started=$SECONDS
  if [ "${OPSBUS_IMAGES_REBUILD:-0}" = 1 ] || ! podman image exists "$image:$key"; then
    say "building $image:$key"
    flags=(--pull=never)
    [ "${OPSBUS_IMAGE_BASE:-debian}" = debian ] || flags=(--pull=missing)
    [ "${OPSBUS_IMAGES_REBUILD:-0}" = 1 ] && flags+=(--no-cache)
    podman build "${flags[@]}" --format docker --layers --file "$root/deploy/docker/Dockerfile" \
      --build-arg "SERVICE=$service" "${build_args[@]}" --secret "id=extra_ca,src=$secret_file" \
      --label "org.opsbus.inputs=$key" --tag "$image:$key" "$root" >&2
  fi
  podman tag "$image:$key" "$image:dev"
  size="$(podman image inspect --format '{{.Size}}' "$image:$key")"
  printf '%s %s %s %s\n' "opsbus-$service" "$key" "$size" "$((SECONDS - started))"
done
