#!/usr/bin/env bash
# musl/check.sh TARGET BINARY: the binary is a static, stripped ELF for TARGET (header and
# `file`) and prints its version under qemu-user with the target's CPU.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/musl/qemu.sh"
TARGET=$1 BIN=$2

python3 "$ROOT/musl/elfarch.py" "$TARGET" "$BIN"
desc=$(file -b "$BIN")
case "$desc" in
  *"statically linked"*|*"static-pie linked"*) ;;
  *) echo "FAIL $BIN: not static: $desc" >&2; exit 1 ;;
esac
case "$desc" in *", stripped"*) ;; *) echo "FAIL $BIN: not stripped: $desc" >&2; exit 1 ;; esac

want="sprig $(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
# shellcheck disable=SC2046
got=$(QEMU_CPU=$(qemu_cpu "$TARGET") $(qemu_cmd "$TARGET") "$BIN" --version)
if [ "$got" != "$want" ]; then
  echo "FAIL $BIN --version printed '$got', want '$want'" >&2; exit 1
fi
echo "ok $TARGET: $desc; runs: $got"
