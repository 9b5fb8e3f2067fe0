#!/usr/bin/env bash
# Regenerates musl/symbol-order.txt, the link-time function order musl/zigcc-order.sh applies (idle
# RSS: the code sprig runs sits together in .text instead of being spread over all of it).
#
#   scripts/symbol-order.sh [UNSTRIPPED_BINARY]
#
# Runs the unstripped x86_64 router build (musl/build.sh x86_64-unknown-linux-musl; any order)
# under valgrind's callgrind twice through scripts/idle-rss.sh, and lists every function that
# ran, as demangled names (the same on every target; musl/zigcc-order.sh maps them to each link's
# symbols), in four sets:
#   1. what runs after start-up in the bench's idle state: one TLS device served (handshake,
#      CONNECT, DISCONNECT) and idle timers for 6 s (callgrind switched on once sprig listens);
#   2. what start-up alone runs (config, 200-device group, certificates): sprig unmaps its code
#      once start-up is over (sys::release_text), and only set 1 comes back;
#   3. functions added by a short session of traffic (QoS 0/1 fan-in to a subscriber, shadow
#      updates), after the first two, so that the bench's idle touches set 1 only;
#   4. code that runs natively but not under valgrind (ring's CPU-specific assembly: valgrind's
#      CPU lacks some features): the first-touch text page faults of an idle run natively
#      under `perf record -e page-faults -d`, from a copy on tmpfs (4 KiB page cache pages:
#      on ext4 with large folios one fault maps a whole folio). Only functions of windows
#      outside sets 1-3 fault, so run this on a build linked with the previous order
#      (musl/build.sh does that); the set accumulates over runs, so after big changes run
#      build + this script two or three times. Skipped without perf.
# Within a set, names are sorted (stable diffs). Refresh after changes to the start, TLS or
# session code; a stale file only costs RSS (new functions land in the cold part of .text).
# Needs valgrind (Debian package). Takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BIN=${1:-$REPO/target-cross/unstripped/x86_64-unknown-linux-musl/router/sprig}
[ -x "$BIN" ] || { echo "symbol-order.sh: $BIN missing (musl/build.sh x86_64-unknown-linux-musl)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "symbol-order.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
LLVM_BIN="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin"
OUT=$REPO/musl/symbol-order.txt
WORK=$REPO/target/symbol-order
mkdir -p "$WORK"

cg() { # $1 output file, then idle-rss.sh options
  local out=$1; shift
  scripts/idle-rss.sh "$@" --wrap "valgrind --tool=callgrind --callgrind-out-file=$out \
    --dump-instr=no --dump-line=no --compress-strings=no --compress-pos=no --demangle=no" "$BIN"
}
cg "$WORK/idle.cg" --settle 6
cg "$WORK/traffic.cg" --settle 6 --traffic
scripts/idle-rss.sh --steady --settle 6 --wrap "valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file=$WORK/steady.cg --dump-instr=no --dump-line=no --compress-strings=no \
    --compress-pos=no --demangle=no" "$BIN"
rm -f "$WORK/faults.txt"
if command -v perf >/dev/null && [ -d /dev/shm ]; then
  shm=$(mktemp -d /dev/shm/sprig-order.XXXXXX)
  cp "$BIN" "$shm/sprig"
  scripts/idle-rss.sh --settle 2 --wrap "perf record -q -e page-faults -c 1 -d -o $WORK/faults.data" "$shm/sprig"
  rm -rf "$shm"
  perf script -i "$WORK/faults.data" -F addr >"$WORK/faults.txt" 2>/dev/null || true
else
  echo "symbol-order.sh: no perf or /dev/shm: set 3 (native-only code) left empty" >&2
fi

"$LLVM_BIN/llvm-nm" -p --defined-only "$BIN" >"$WORK/nm.raw"
"$LLVM_BIN/llvm-nm" -p -C --defined-only "$BIN" >"$WORK/nm.dem"
"$LLVM_BIN/llvm-nm" -p -S --defined-only "$BIN" >"$WORK/nm.size"
python3 - "$WORK" "$BIN" "$OUT" >"$OUT.tmp" <<'EOF'
import bisect, os, re, sys
work, binary = sys.argv[1:3]
demangled, starts = {}, []
with open(f"{work}/nm.raw") as r, open(f"{work}/nm.dem") as d:
    for lr, ld in zip(r, d):
        pr, pd = lr.rstrip("\n").split(" ", 2), ld.rstrip("\n").split(" ", 2)
        if len(pr) == 3 and len(pd) == 3 and pr[1] in "tTwW":
            demangled[pr[2]] = pd[2]
sizes = {}
for line in open(f"{work}/nm.size"):
    p = line.rstrip("\n").split(" ", 3)
    if len(p) == 4 and p[2] in "tTwW":
        sizes[p[3]] = int(p[1], 16)
with open(f"{work}/nm.raw") as r:
    for line in r:
        p = line.rstrip("\n").split(" ", 2)
        if len(p) == 3 and p[1] in "tTwW":
            starts.append((int(p[0], 16), sizes.get(p[2], 0), demangled[p[2]]))
starts.sort()
addrs = [a for a, _, _ in starts]


def owner(a):
    """The function at address a. musl's assembly (memset, _start, ...) has symbols without a
    size, which valgrind does not name (it reports their code as addresses)."""
    i = bisect.bisect_right(addrs, a) - 1
    if i >= 0 and a < starts[i][0] + (starts[i][1] or 4096):
        return starts[i][2]
    return None

def ran(cg):
    names = set()
    for line in open(cg):
        if line.startswith("fn="):
            # callgrind marks recursion levels as NAME'2; unnamed code is an address.
            sym = re.sub(r"'\d+$", "", line[3:].rstrip("\n"))
            name = demangled.get(sym) or (owner(int(sym, 16)) if sym.startswith("0x") else None)
            if name:
                names.add(name)
    return names

steady = ran(f"{work}/steady.cg")
start = ran(f"{work}/idle.cg") - steady
traffic = ran(f"{work}/traffic.cg") - steady - start
native = set()
if os.path.exists(f"{work}/faults.txt"):
    for line in open(f"{work}/faults.txt"):
        try:
            name = owner(int(line.strip(), 16))
        except ValueError:
            continue
        if name:
            native.add(name)
# The native set accumulates over runs (each native run sees only the first fault of each
# 64 KiB window outside the other sets); names gone from the binary drop out.
previous = sys.argv[3]
if os.path.exists(previous):
    in3, known = False, set(demangled.values())
    for line in open(previous):
        if line.startswith("#"):
            in3 = "run natively" in line
        elif in3 and line.rstrip("\n") in known:
            native.add(line.rstrip("\n"))
native -= steady | start | traffic
print("# Link-time function order for musl/zigcc-order.sh (idle RSS). Generated by scripts/symbol-order.sh")
print("# from callgrind runs of the x86_64 router build; do not edit by hand.")
sets = [
    ("after start-up: one TLS device + idle", steady),
    ("start-up only (its pages are released once it is over)", start),
    ("added by a short session of traffic", traffic),
    ("run natively, not under valgrind", native),
]
for i, (what, names) in enumerate(sets, 1):
    print(f"# Set {i}: {what} ({len(names)} functions).")
    for n in sorted(names):
        print(n)
EOF
mv "$OUT.tmp" "$OUT"
echo "symbol-order.sh: $(grep -vc '^#' "$OUT") functions in $OUT" >&2
