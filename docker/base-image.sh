#!/usr/bin/env bash
# Makes the image's base, a Debian 12 root file system, without a registry:
#
#   docker/base-image.sh IMAGE
#
# `debootstrap --variant=minbase bookworm` fetches the packages from the Debian mirror that
# apt already uses (the only package source these machines reach), with the daemon's native
# needs included, and `docker import` turns the tree into an image. Kept when it exists:
# rebuilding it takes minutes and nothing in it changes with the code. A machine with a
# registry uses debian:bookworm-slim instead (see the README, "Running in containers").
set -euo pipefail

image=${1:?usage: $0 IMAGE}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if docker image inspect "$image" >/dev/null 2>&1; then
    exit 0
fi
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }

# The same list the Dockerfile installs on a stock base: one source of truth.
packages=$(grep -v '^#' "$root/packages.txt" | xargs | tr ' ' ',')
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
tree=$(mktemp -d /var/tmp/hsmvault-base.XXXXXX)
trap 'rm -rf "$tree"' EXIT

echo "building base image $image with debootstrap (once; takes a few minutes)" >&2
debootstrap --variant=minbase --include="$packages" bookworm "$tree" "$mirror" >"$tree.log" 2>&1 \
    || { tail -20 "$tree.log" >&2; rm -f "$tree.log"; exit 1; }
rm -f "$tree.log"
# What a container never needs: package lists and caches, documentation.
rm -rf "$tree"/var/lib/apt/lists/* "$tree"/var/cache/apt/*.bin "$tree"/var/cache/apt/archives/*.deb \
       "$tree"/usr/share/doc/* "$tree"/usr/share/man/* "$tree"/usr/share/locale/*
tar -C "$tree" --numeric-owner -c . | docker import \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase bookworm + $packages" - "$image" >/dev/null
echo "base image $image ready" >&2
