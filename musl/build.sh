#!/usr/bin/env bash
# Builds one fully static, stripped sprig for a musl target and profile:
#   musl/build.sh TARGET [--profile router|full] [--check] [--no-order]
# Output: dist/bin/<target>/<profile>/sprig (stripped) and
#         target-cross/unstripped/<target>/<profile>/sprig (symbols, for the size report).
# --check also verifies the binary is static ELF for the right machine and runs
# `--version` under qemu-user (native for x86_64). --no-order links without
# musl/symbol-order.txt (the link-time function order for idle RSS, see musl/zigcc-order.sh).
#
# Tools (all installed by musl/env.sh, versions pinned there): `-Z build-std` from rust-src;
# zig (PyPI `ziglang`) through cargo-zigbuild as C compiler (ring), linker and musl libc.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

usage() { echo "usage: musl/build.sh TARGET [--profile router|full] [--check] [--no-order]" >&2; exit 2; }
[ $# -ge 1 ] || usage
TARGET=$1; shift
PROFILE=router
CHECK=0
ORDER=$ROOT/musl/symbol-order.txt
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE=${2:-}; shift 2 || usage ;;
    --check) CHECK=1; shift ;;
    --no-order) ORDER=; shift ;;
    *) usage ;;
  esac
done

case "$PROFILE" in
  router) FEATURES=(--no-default-features) ;;
  full) FEATURES=(--no-default-features --features full) ;;
  *) echo "unknown profile '$PROFILE' (router|full)" >&2; exit 2 ;;
esac

# Per target: extra rustc flags (CPU). Every target builds std from source
# (-Z build-std): rustup has no std for the Armv6/Armv7/MIPS musl targets here, and for all of
# them it lets us drop std's backtrace symbolizer (gimli/addr2line/miniz, ~100 KB of a 270 KB
# binary; panics still print their message) and pick its size-optimized algorithms.
RUSTFLAGS_T=""
case "$TARGET" in
  x86_64-unknown-linux-musl) ;;
  aarch64-unknown-linux-musl) ;;
  arm-unknown-linux-musleabihf)
    # Raspberry Pi Zero / Pi 1: ARM1176JZF-S, Armv6 with VFPv2, hard-float ABI.
    # LLVM's machine outliner (repeated instruction sequences become one shared function):
    # -73,952 bytes (-5.1%), which the 1.4 MiB goal for this board needs (size-report/README.md).
    RUSTFLAGS_T="-C target-cpu=arm1176jzf-s -C llvm-args=-enable-machine-outliner=always" ;;
  armv7-unknown-linux-musleabihf)
    # OpenWrt arm_cortex-a7_neon-vfpv4 (ipq40xx, mt7629, sunxi, ...).
    RUSTFLAGS_T="-C target-cpu=cortex-a7" ;;
  mipsel-unknown-linux-musl)
    # OpenWrt mipsel_24kc (ramips mt7621/mt76x8): MIPS32r2 24KEc, soft-float.
    # Soft-float comes from the target spec; cargo-zigbuild links zig's soft-float musl
    # (mipsel-linux-musleabi). musl/elfarch.py checks the fp_abi of the result.
    # Non-PIC code: zig links MIPS as static-pie by default, and MIPS PIC code is big
    # (13% of the binary with broker and cloud link in).
    RUSTFLAGS_T="-C target-cpu=mips32r2 -C relocation-model=static" ;;
  *) echo "unsupported target '$TARGET'" >&2; exit 2 ;;
esac

# shellcheck source=musl/env.sh
. "$ROOT/musl/env.sh"

TRIPLE_ENV=$(echo "$TARGET" | tr 'a-z-' 'A-Z_')
# std is built with the same flags (CPU) as sprig. musl's crt objects and libc come from zig,
# not from Rust's self-contained set (absent for build-std targets). RUSTC_BOOTSTRAP lets
# stable use -Z build-std.
export RUSTC_BOOTSTRAP=1
# Size flags (measured one by one in size-report/README.md):
# -C force-unwind-tables=no: panic=abort never unwinds, yet x86_64 keeps .eh_frame tables for
#   every function by default (~280 KB); ARM's .ARM.exidx shrinks the same way.
# -Z location-detail=none: panic messages stay, their file:line:column go (~66 KB).
# -C linker=musl/zigcc-order.sh: cargo-zigbuild's zig cc, then the link again with the function order
#   (musl/symbol-order.txt): the code run at start, in a device session and idle sits together,
#   so idle RSS holds those pages instead of the whole text (ARCHITECTURE.md, "Idle RSS").
FLAGS="$RUSTFLAGS_T -C link-self-contained=no -C force-unwind-tables=no -Z location-detail=none"
FLAGS="$FLAGS -C linker=$ROOT/musl/zigcc-order.sh"
CARGO_ARGS=(zigbuild --release --locked --target "$TARGET" "${FEATURES[@]}"
  --config 'profile.release.strip=false'
  -Z build-std=std,panic_abort -Z build-std-features=optimize_for_size)
export "CARGO_TARGET_${TRIPLE_ENV}_RUSTFLAGS=$FLAGS"
# One target dir for both profiles: the dependencies (and std) do not depend on the profile,
# so the second profile only rebuilds sprig itself.
export CARGO_TARGET_DIR="$ROOT/target-cross/build"

export SPRIG_LINKER_VAR="CARGO_TARGET_${TRIPLE_ENV}_LINKER" LLVM_BIN
export SPRIG_SYMBOL_ORDER=$ORDER SPRIG_LINK_REPORT="$CARGO_TARGET_DIR/link-order-$TARGET-$PROFILE.txt"
rm -f "$SPRIG_LINK_REPORT"
# Cargo does not know the order file: when it (or --no-order) changed since this target and
# profile last linked, make sprig relink.
stamp="$CARGO_TARGET_DIR/link-order-$TARGET-$PROFILE.stamp"
want="order: $( [ -n "$ORDER" ] && sha256sum "$ORDER" | cut -c1-64 || echo none)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then touch "$ROOT/src/main.rs"; fi

echo "== building $TARGET ($PROFILE)" >&2
start=$(date +%s)
nice -n 10 cargo "${CARGO_ARGS[@]}" >&2
echo "== built $TARGET ($PROFILE) in $(( $(date +%s) - start ))s" >&2
echo "$want" >"$stamp"
[ ! -s "$SPRIG_LINK_REPORT" ] || echo "== link order: $(cat "$SPRIG_LINK_REPORT")" >&2

built="$CARGO_TARGET_DIR/$TARGET/release/sprig"
unstripped="$ROOT/target-cross/unstripped/$TARGET/$PROFILE/sprig"
out="$ROOT/dist/bin/$TARGET/$PROFILE/sprig"
mkdir -p "$(dirname "$unstripped")" "$(dirname "$out")"
cp "$built" "$unstripped"
# Written, synced and dropped from the page cache: running dist/bin/... (scripts/bench.sh)
# then reads the file cold, as a router does after installing and booting. A file still in the
# cache from its writing can be held in large page-cache folios (Linux 6.18, ext4), which map
# in bigger pieces on fault: idle RSS 1,596 kB as written against 1,440 kB read cold
# (ARCHITECTURE.md "Idle RSS").
"$LLVM_BIN/llvm-strip" --strip-all -o "$out" "$built"
python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$out"
chmod 0755 "$out"
echo "$out"

if [ "$CHECK" = 1 ]; then "$ROOT/musl/check.sh" "$TARGET" "$out"; fi
