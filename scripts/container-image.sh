#!/bin/sh
# Builds the oxisd container image (the one ../Containerfile describes) from a static binary
# made on this machine, for machines where the build stage's Rust image cannot be pulled, or
# to package a binary from scripts/cross-build.sh. Needs podman (or docker with
# OXISD_ENGINE=docker).
#
#   scripts/container-image.sh                       # builds x86_64-unknown-linux-musl here
#   scripts/container-image.sh BINARY [TAG [PLATFORM]]
#   scripts/container-image.sh target/cross/dist/oxisd-aarch64-unknown-linux-musl oxisd:arm64 linux/arm64
#
# The x86_64 build needs Debian's musl-tools (musl-gcc, for ring's C code) and rustup's
# x86_64-unknown-linux-musl target; they are installed when missing (as root).
set -eu
cd "$(dirname "$0")/.."
engine=${OXISD_ENGINE:-podman}
binary=${1:-}
tag=${2:-oxisd:latest}
platform=${3:-linux/amd64}
if [ -z "$binary" ]; then
    command -v musl-gcc >/dev/null || apt-get install -y musl-tools
    rustup target list --installed | grep -qx x86_64-unknown-linux-musl \
        || rustup target add x86_64-unknown-linux-musl
    CC_x86_64_unknown_linux_musl=musl-gcc cargo build --release --locked \
        --target x86_64-unknown-linux-musl --target-dir target/container
    binary=target/container/x86_64-unknown-linux-musl/release/oxisd
fi
# An image FROM scratch has no C library: the binary must be static.
if ldd "$binary" >/dev/null 2>&1 && ! ldd "$binary" 2>&1 | grep -q "statically linked"; then
    echo "$binary is dynamically linked; the image needs a static (musl) binary" >&2
    exit 1
fi
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/rootfs/etc/oxisd" "$context/rootfs/etc/ssl/certs" "$context/rootfs/tmp" \
    "$context/data"
cp "$binary" "$context/rootfs/oxisd"
cp contrib/container/config.yaml "$context/rootfs/etc/oxisd/config.yaml"
cp /etc/ssl/certs/ca-certificates.crt "$context/rootfs/etc/ssl/certs/"
chmod 1777 "$context/rootfs/tmp"
chmod 0700 "$context/data"
# podman writes OCI images by default, which have no HEALTHCHECK.
format=""
[ "$(basename "$engine")" = podman ] && format="--format docker"
# shellcheck disable=SC2086
"$engine" build $format --platform "$platform" -f contrib/container/Containerfile.prebuilt -t "$tag" "$context"
echo "built $tag from $binary"
