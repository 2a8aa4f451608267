#!/usr/bin/env bash
# Cross-builds the oxisd release binary for ARM on a Debian 12 x86_64 machine, without Docker.
#
#   scripts/cross-build.sh aarch64-unknown-linux-gnu        # dynamic, glibc >= 2.34
#   scripts/cross-build.sh aarch64-unknown-linux-musl       # static (size budget: 8 MiB)
#   scripts/cross-build.sh armv7-unknown-linux-musleabihf   # static
#
# It installs what it needs itself (apt packages as root; ziglang and cargo-zigbuild from PyPI
# in a venv under target/cross/tools), skipping what is already there, then builds with
# Debian's rustc-web (the rustup toolchain here has no ARM std), copies the stripped binary to
# target/cross/dist/oxisd-<target> and prints its size. See docs/ARM.md.
#
# Environment:
#   OXISD_CROSS_DIR   build area (default: <repo>/target/cross); each target builds in
#                     $OXISD_CROSS_DIR/<target> so the three never invalidate each other.
#                     The binary goes to $OXISD_CROSS_DIR/dist/oxisd-<target>, even when it
#                     is over the size budget (the script still fails then).
#   OXISD_CROSS_OPT   opt-level (s, z, 2, ...) for this cross build only (default: the release
#                     profile's 3), built in $OXISD_CROSS_DIR/<target>-opt<level>. Cargo.toml
#                     and so the x86_64 build are not changed.
#   OXISD_NICE        niceness of the build (default 19: the machine is shared)
#   OXISD_SIZE_BUDGET bytes allowed for aarch64-unknown-linux-musl (default 8388608 = 8 MiB)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CROSS_DIR=${OXISD_CROSS_DIR:-$ROOT/target/cross}
TOOLS=$CROSS_DIR/tools
DIST=$CROSS_DIR/dist
NICE=${OXISD_NICE:-19}
SIZE_BUDGET=${OXISD_SIZE_BUDGET:-8388608}
# Versions checked with this script (PyPI). Override to try others.
ZIGLANG_SPEC=${OXISD_ZIGLANG_SPEC:-ziglang==0.17.1}
ZIGBUILD_SPEC=${OXISD_ZIGBUILD_SPEC:-cargo-zigbuild==0.24.1}

die() { echo "cross-build: error: $*" >&2; exit 1; }
say() { echo "cross-build: $*" >&2; }

usage() {
    echo "usage: $0 TARGET" >&2
    echo "  TARGET: aarch64-unknown-linux-gnu | aarch64-unknown-linux-musl | armv7-unknown-linux-musleabihf" >&2
    exit 2
}

[ $# -eq 1 ] || usage
TARGET=$1
case $TARGET in
    aarch64-unknown-linux-gnu)
        KIND=gnu
        APT_PKGS=(rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
        FOREIGN_ARCH=arm64
        ;;
    aarch64-unknown-linux-musl | armv7-unknown-linux-musleabihf)
        KIND=musl
        APT_PKGS=(rustc-web cargo-web rust-web-src)
        FOREIGN_ARCH=
        ;;
    -h | --help) usage ;;
    *) die "unsupported target '$TARGET' (see --help)" ;;
esac
ENV_TARGET=$(echo "$TARGET" | tr 'a-z-' 'A-Z_')   # AARCH64_UNKNOWN_LINUX_GNU
ENV_CC_TARGET=${TARGET//-/_}                      # aarch64_unknown_linux_gnu

# ---------------------------------------------------------------- apt packages, as root
SUDO=()
need_root() {
    command -v apt-get >/dev/null && command -v dpkg >/dev/null ||
        die "apt-get/dpkg not found: this script installs its tools on Debian 12 (bookworm). Install by hand the equivalents of: $*"
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            SUDO=(sudo -n)
        else
            die "these packages are missing and installing them needs root (or password-less sudo): $*
  run as root, or first: sudo apt-get install -y $*"
        fi
    fi
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

apt_update() {
    # Debian's mirrors sometimes serve a foreign architecture's index mid-sync; retry.
    local i
    for i in 1 2 3 4 5; do
        if "${SUDO[@]}" apt-get update -q >&2; then return 0; fi
        say "apt-get update failed (try $i of 5), retrying in 30 s"
        sleep 30
    done
    die "apt-get update keeps failing (a mirror mid-sync? try again later)"
}

ensure_apt() {
    local missing=() p
    for p in "$@"; do installed "$p" || missing+=("$p"); done
    local need_arch=
    if [ -n "$FOREIGN_ARCH" ] && command -v dpkg >/dev/null &&
        ! dpkg --print-foreign-architectures | grep -qx "$FOREIGN_ARCH"; then
        need_arch=$FOREIGN_ARCH
    fi
    [ ${#missing[@]} -eq 0 ] && [ -z "$need_arch" ] && return 0
    need_root "${missing[@]}"
    if [ -n "$need_arch" ]; then
        say "adding the dpkg architecture $need_arch"
        "${SUDO[@]}" dpkg --add-architecture "$need_arch"
    fi
    say "installing: ${missing[*]}"
    apt_update
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
        die "apt-get install failed for: ${missing[*]}"
}

ensure_apt "${APT_PKGS[@]}"
[ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] || die "/usr/bin/rustc or /usr/bin/cargo missing after installing rustc-web/cargo-web"

# ---------------------------------------------------------------- zig + cargo-zigbuild (musl)
VENV=$TOOLS/venv
ensure_zig() {
    if [ -x "$VENV/bin/cargo-zigbuild" ] && "$VENV/bin/python" -m ziglang version >/dev/null 2>&1; then
        return 0
    fi
    local py
    py=$(command -v /usr/bin/python3 || command -v python3 || true)
    [ -n "$py" ] || die "python3 is needed for the ziglang venv (apt-get install python3 python3-venv)"
    mkdir -p "$TOOLS"
    if [ ! -x "$VENV/bin/pip" ]; then
        say "creating the venv $VENV"
        rm -rf "$VENV"
        if ! "$py" -m venv "$VENV" >&2; then
            ensure_apt python3-venv
            rm -rf "$VENV"
            "$py" -m venv "$VENV" >&2 || die "could not create a Python venv in $VENV"
        fi
    fi
    say "installing $ZIGLANG_SPEC $ZIGBUILD_SPEC into $VENV"
    "$VENV/bin/pip" install -q "$ZIGLANG_SPEC" "$ZIGBUILD_SPEC" >&2 ||
        die "pip install $ZIGLANG_SPEC $ZIGBUILD_SPEC failed"
}

# ---------------------------------------------------------------- build
# Another opt-level builds in its own directory, so it does not invalidate the default one.
BUILD_DIR=$CROSS_DIR/$TARGET${OXISD_CROSS_OPT:+-opt$OXISD_CROSS_OPT}
mkdir -p "$BUILD_DIR" "$DIST"

# One cross build at a time on this machine (the cores are shared).
exec 9>"$CROSS_DIR/.build.lock"
if ! flock -n 9; then
    say "another cross build holds $CROSS_DIR/.build.lock; waiting for it"
    flock 9
fi

# Debian's toolchain, not rustup's: only it has the ARM std (gnu) and the std sources (musl).
export PATH=/usr/bin:/bin:$PATH
export RUSTC=/usr/bin/rustc CARGO=/usr/bin/cargo RUSTDOC=/usr/bin/rustdoc
unset RUSTUP_TOOLCHAIN RUSTC_WRAPPER RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS || true
export CARGO_TARGET_DIR=$BUILD_DIR
if [ -n "${OXISD_CROSS_OPT:-}" ]; then
    export CARGO_PROFILE_RELEASE_OPT_LEVEL=$OXISD_CROSS_OPT
    say "opt-level $OXISD_CROSS_OPT for this cross build (Cargo.toml unchanged)"
fi

cd "$ROOT"
say "building $TARGET with $(/usr/bin/rustc --version) in $BUILD_DIR (nice $NICE)"
START=$(date +%s)
case $KIND in
    gnu)
        export "CARGO_TARGET_${ENV_TARGET}_LINKER=aarch64-linux-gnu-gcc" \
            "CC_${ENV_CC_TARGET}=aarch64-linux-gnu-gcc" \
            "AR_${ENV_CC_TARGET}=aarch64-linux-gnu-ar"
        nice -n "$NICE" /usr/bin/cargo build --locked --release --target "$TARGET" --bin oxisd
        ;;
    musl)
        ensure_zig
        export PATH=$VENV/bin:$PATH RUSTC_BOOTSTRAP=1
        # Debian ships no self-contained crt objects for musl; zig supplies them.
        export "CARGO_TARGET_${ENV_TARGET}_RUSTFLAGS=-C link-self-contained=no"
        # std is rebuilt from rust-web-src; panic stays "unwind" (panic_abort is only built
        # because build-std wants both runtimes available).
        nice -n "$NICE" "$VENV/bin/cargo-zigbuild" zigbuild --locked --release --target "$TARGET" --bin oxisd \
            -Zbuild-std=std,panic_abort
        ;;
esac
ELAPSED=$(($(date +%s) - START))

BIN=$BUILD_DIR/$TARGET/release/oxisd
[ -f "$BIN" ] || die "the build finished but $BIN is missing"
OUT=$DIST/oxisd-$TARGET
cp -f "$BIN" "$OUT.tmp"

# The release profile says strip = true; check it held, and strip here if it did not.
has_symtab() { readelf -S -W "$1" 2>/dev/null | grep -qE '\.symtab|\.debug_'; }
if has_symtab "$OUT.tmp"; then
    say "warning: $BIN still has symbols or debug info; stripping the copy"
    if command -v llvm-strip >/dev/null; then
        llvm-strip --strip-all "$OUT.tmp"
    elif [ "$KIND" = gnu ] && command -v aarch64-linux-gnu-strip >/dev/null; then
        aarch64-linux-gnu-strip --strip-all "$OUT.tmp"
    elif [ -x "$VENV/bin/python" ]; then
        "$VENV/bin/python" -m ziglang objcopy --strip-all "$OUT.tmp" "$OUT.stripped" && mv -f "$OUT.stripped" "$OUT.tmp"
    else
        die "no strip tool for $TARGET (install llvm or binutils-multiarch)"
    fi
    has_symtab "$OUT.tmp" && die "could not strip $OUT"
fi
mv -f "$OUT.tmp" "$OUT"

SIZE=$(stat -c %s "$OUT")
MIB=$(awk -v s="$SIZE" 'BEGIN { printf "%.2f", s / 1048576 }')
echo "built:    $OUT"
echo "type:     $(file -b "$OUT")"
echo "time:     ${ELAPSED}s ($((ELAPSED / 60))m$(printf %02d $((ELAPSED % 60)))s)"
echo "stripped: $SIZE bytes ($MIB MiB)"

if [ "$TARGET" = aarch64-unknown-linux-musl ]; then
    if [ "$SIZE" -gt "$SIZE_BUDGET" ]; then
        OVER=$((SIZE - SIZE_BUDGET))
        die "$TARGET is $SIZE bytes stripped: $OVER bytes ($(awk -v s="$OVER" 'BEGIN { printf "%.2f", s / 1048576 }') MiB) over the budget of $SIZE_BUDGET bytes"
    fi
    echo "budget:   within $SIZE_BUDGET bytes ($((SIZE_BUDGET - SIZE)) bytes to spare)"
fi
