#!/usr/bin/env bash
# Builds every target in the router and full profiles and writes size-report/REPORT.md:
# bytes per target and profile, the change since the last report (size-report/sizes.tsv)
# and the largest contributors (symbol sizes of the unstripped Pi Zero build).
#   size-report/report.sh               report only (budgets unchanged)
#   size-report/report.sh --rebaseline  also set budgets.txt = measured + 10% (router <= 2 MiB)
#   SIZE_TARGETS="..." to limit the targets; SIZE_NO_BUILD=1 to report on dist/bin as it is.
# Takes ~25-40 min on 2 cores from clean (10 release builds); not run in CI, which checks the
# budgets of the binaries it builds with size-report/check-budgets.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
REBASE=0; [ "${1:-}" = --rebaseline ] && REBASE=1
TARGETS=${SIZE_TARGETS:-"arm-unknown-linux-musleabihf armv7-unknown-linux-musleabihf aarch64-unknown-linux-musl x86_64-unknown-linux-musl mipsel-unknown-linux-musl"}
PROFILES="router full"
. musl/env.sh
SIZES=size-report/sizes.tsv BUDGETS=size-report/budgets.txt
new=$(mktemp)
trap 'rm -f "$new"' EXIT

for t in $TARGETS; do
  for p in $PROFILES; do
    if [ "${SIZE_NO_BUILD:-0}" != 1 ]; then
      if ! musl/build.sh "$t" --profile "$p" --check >/dev/null; then
        echo "report: $t $p did not build or run; left out" >&2; continue
      fi
    fi
    bin="dist/bin/$t/$p/sprig"
    [ -f "$bin" ] && printf '%s\t%s\t%s\n' "$t" "$p" "$(stat -c %s "$bin")" >> "$new"
  done
done

if [ "$REBASE" = 1 ]; then
  {
    echo "# target profile max_bytes: measured + 10% (router capped at 2 MiB, Pi Zero router at 1.4 MiB). Checked by"
    echo "# size-report/check-budgets.sh in CI; regenerate with size-report/report.sh --rebaseline"
    # Caps (issue 13): any router build 2 MiB; the Pi Zero's (Armv6) router build 1.4 MiB.
    awk '{ b = int($3 * 1.1); if ($2 == "router" && b > 2097152) b = 2097152;
           if ($1 == "arm-unknown-linux-musleabihf" && $2 == "router" && b > 1468006) b = 1468006;
           print $1, $2, b }' "$new"
    # targets this run did not build keep their budgets
    awk 'NR == FNR { seen[$1 " " $2] = 1; next } /^#/ { next } !(($1 " " $2) in seen)' "$new" "$BUDGETS" 2>/dev/null || true
  } > "$BUDGETS.new"
  mv "$BUDGETS.new" "$BUDGETS"
  echo "report: budgets re-baselined in $BUDGETS" >&2
fi
{
  echo "# sprig binary sizes"
  echo
  echo "Written by \`size-report/report.sh\` on $(date -u +%Y-%m-%d) at commit $(git rev-parse --short HEAD)"
  echo "($(rustc -V | cut -d' ' -f1-2), zig $ZIGLANG_VERSION, cargo-zigbuild $CARGO_ZIGBUILD_VERSION; opt-level z, fat LTO,"
  echo "panic=abort, std built with optimize_for_size and no backtrace symbolizer, no unwind tables,"
  echo "no panic locations (-Z location-detail=none), log max_level_debug, static musl, stripped)."
  echo "Budgets: size-report/budgets.txt, checked in CI. Build times: size-report/README.md."
  echo
  echo "| Target | Profile | Bytes | KiB | Since last report | Budget |"
  echo "|---|---|---:|---:|---:|---:|"
  while IFS=$'\t' read -r t p size; do
    old=$(awk -v t="$t" -v p="$p" '$1 == t && $2 == p { print $3 }' "$SIZES" 2>/dev/null || true)
    if [ -n "$old" ]; then delta=$(printf '%+d' $((size - old))); else delta="new"; fi
    budget=$(awk -v t="$t" -v p="$p" '$1 == t && $2 == p { print $3 }' "$BUDGETS" 2>/dev/null || true)
    echo "| $t | $p | $size | $((size / 1024)) | $delta | ${budget:--} |"
  done < "$new"
  for p in router full; do
    un="target-cross/unstripped/arm-unknown-linux-musleabihf/$p/sprig"
    st="dist/bin/arm-unknown-linux-musleabihf/$p/sprig"
    [ -f "$un" ] || continue
    echo
    echo "## Largest contributors: Pi Zero ($p)"
    echo
    python3 size-report/contributors.py "$LLVM_BIN/llvm-nm" "$un" "$st" 15
  done
} > size-report/REPORT.md.new
mv size-report/REPORT.md.new size-report/REPORT.md
# sizes.tsv: this run's rows, plus the rows of targets this run did not build.
{ cat "$new"; awk -F'\t' 'NR == FNR { seen[$1 FS $2] = 1; next } !(($1 FS $2) in seen)' "$new" "$SIZES" 2>/dev/null || true; } > "$SIZES.new"
mv "$SIZES.new" "$SIZES"

echo "report: size-report/REPORT.md" >&2
