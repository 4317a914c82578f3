#!/usr/bin/env bash
# Builds the Debian base image the opsbus images can be built on where no image registry is reachable:
# debootstrap (minbase + Python 3 + CA certificates) from Debian's own packages, imported into podman as
# localhost/opsbus-debian:<release>. The root filesystem tarball is cached outside the repo, keyed by the Debian
# release and the package list, so only the first run downloads anything (about 2-4 minutes cold).
#
#   deploy/docker/base-image.sh [release]        (default: bookworm; needs root, debootstrap and podman)
#
# Environment: OPSBUS_CACHE_DIR (default ~/.cache/opsbus), OPSBUS_DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Prints the image reference on stdout. Never used when the public python images can be pulled: the Dockerfile's
# defaults stay those.
set -euo pipefail
release="${1:-bookworm}"
mirror="${OPSBUS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
cache="${OPSBUS_CACHE_DIR:-$HOME/.cache/opsbus}/images"
packages="python3,ca-certificates,passwd"
key="$(printf '%s %s' "$release" "$packages" | sha256sum | cut -c1-12)"
tarball="$cache/debian-$release-$key.tar"
image="localhost/opsbus-debian:$release"
# shellcheck source=podman-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/podman-env.sh"
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || { echo "debootstrap is missing: make setup installs it" >&2; exit 1; }
  mkdir -p "$cache"
  rootfs="$(mktemp -d "$cache/rootfs.XXXXXX")"
  trap 'rm -rf "$rootfs"' EXIT
  say "debootstrap $release (minbase + $packages) from $mirror"
  debootstrap --variant=minbase --include="$packages" "$release" "$rootfs" "$mirror" >&2
  # What a container never needs: package caches and lists, docs, man pages, locales other than C.
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
    "$rootfs"/usr/share/info/* "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/log/*.log
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
  tar --numeric-owner -C "$rootfs" -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
  rm -rf "$rootfs"
fi

# The image carries the tarball's key as a label: a stale import (another package list) is replaced.
if [ "$(podman image inspect --format '{{index .Labels "org.opsbus.base-key"}}' "$image" 2>/dev/null)" != "$key" ]; then
  say "importing $tarball into podman as $image"
  podman import --change "LABEL org.opsbus.base-key=$key" --change 'CMD ["/bin/bash"]' \
    --change 'ENV LANG=C.UTF-8' "$tarball" "$image" >&2
fi
echo "$image"
