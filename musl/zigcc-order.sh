#!/usr/bin/env bash
# The linker rustc calls for musl/build.sh (`-C linker=musl/zigcc-order.sh`): cargo-zigbuild's `zig cc`
# wrapper links as always; then, when SPRIG_SYMBOL_ORDER names an order file, the same ld.lld
# command is run again with `--symbol-ordering-file`, so that the functions sprig runs at start,
# in a device session and while idle sit together in .text (idle RSS: the kernel maps file pages
# 64 KiB around each fault, so scattered hot code keeps the whole text resident).
#
# zig cc refuses unknown -Wl flags, hence the second ld.lld run: `ZIG_VERBOSE_LINK=1` makes zig
# print its ld.lld command line, which is run again through `zig ld.lld` with the ordering added.
#
# The order file (musl/symbol-order.txt, made by scripts/symbol-order.sh) holds demangled names,
# which are the same on every target and survive rebuilds (v0 mangled names carry crate hashes
# that differ per target). They are mapped to this link's mangled names through llvm-nm of the
# first link's output. A stale or absent order costs RSS only: names that no longer exist are
# skipped, and if anything in the second link fails, the first link's output stays and a warning
# is printed.
#
# Environment (set by musl/build.sh): SPRIG_LINKER_VAR names the variable that holds
# cargo-zigbuild's linker (CARGO_TARGET_<TRIPLE>_LINKER); LLVM_BIN the llvm-tools directory;
# SPRIG_SYMBOL_ORDER the order file (unset or empty: no ordering); SPRIG_LINK_REPORT a file that
# receives one line saying what was done (rustc hides a successful linker's messages).
set -uo pipefail

zigcc=${!SPRIG_LINKER_VAR:-}
[ -n "$zigcc" ] || { echo "musl/zigcc-order.sh: \$$SPRIG_LINKER_VAR (cargo-zigbuild's linker) is not set" >&2; exit 1; }
if [ -z "${SPRIG_SYMBOL_ORDER:-}" ]; then exec "$zigcc" "$@"; fi

out=
prev=
for a in "$@"; do
  [ "$prev" = -o ] && out=$a
  prev=$a
done
log=$(mktemp)
trap 'rm -f "$log" "$log".*' EXIT
ZIG_VERBOSE_LINK=1 "$zigcc" "$@" 2>"$log"
rc=$?
# zig prints one ld.lld line per link it runs (crt objects with -r first); ours writes $out.
grep -v '^ld\.lld ' "$log" >&2
[ $rc = 0 ] || exit $rc

report() { echo "musl/zigcc-order.sh: $*" >&2; [ -z "${SPRIG_LINK_REPORT:-}" ] || echo "$*" >"$SPRIG_LINK_REPORT"; }
warn() { report "warning: $*; $out is linked without the symbol order"; exit 0; }
[ -n "$out" ] || warn "no -o in the link command"
[ -s "$SPRIG_SYMBOL_ORDER" ] || warn "no order file $SPRIG_SYMBOL_ORDER"
cmd=$(grep '^ld\.lld ' "$log" | grep -F -- "-o $out " | tail -1)
[ -n "$cmd" ] || warn "zig printed no ld.lld command for $out"

# Demangled name -> this link's symbols, in the order file's order.
"$LLVM_BIN/llvm-nm" -p --defined-only "$out" >"$log.raw" 2>/dev/null || warn "llvm-nm failed"
"$LLVM_BIN/llvm-nm" -p -C --defined-only "$out" >"$log.dem" 2>/dev/null || warn "llvm-nm -C failed"
python3 - "$SPRIG_SYMBOL_ORDER" "$log.raw" "$log.dem" >"$log.order" <<'EOF' || warn "could not map the order file"
import sys
order, raw, dem = sys.argv[1:4]
by_name = {}
with open(raw) as r, open(dem) as d:
    for lr, ld in zip(r, d):
        # "ADDRESS TYPE NAME"; only code (t/T/w/W) is ordered.
        pr, pd = lr.rstrip("\n").split(" ", 2), ld.rstrip("\n").split(" ", 2)
        if len(pr) == 3 and len(pd) == 3 and pr[1] in "tTwW":
            by_name.setdefault(pd[2], []).append(pr[2])
seen = set()
for line in open(order):
    name = line.rstrip("\n")
    if not name or name.startswith("#"):
        continue
    for sym in by_name.get(name, ()):
        if sym not in seen:
            seen.add(sym)
            print(sym)
EOF
[ -s "$log.order" ] || warn "no name of the order file is in this link"

# Run zig's own ld.lld with the same arguments plus the order, into a temp file first.
read -r -a argv <<<"$cmd"
tmp=$out.ordered
for i in "${!argv[@]}"; do
  if [ "${argv[$i]}" = -o ]; then argv[i+1]=$tmp; fi
done
python3 -m ziglang "${argv[@]}" --symbol-ordering-file="$log.order" --no-warn-symbol-ordering >&2 \
  || { rm -f "$tmp"; warn "ld.lld with the order failed"; }
mv -f "$tmp" "$out"
report "$(wc -l <"$log.order") symbols ordered from $SPRIG_SYMBOL_ORDER"
