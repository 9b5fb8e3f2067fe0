#!/usr/bin/env bash
# Fails when any built binary in dist/bin is over its budget in size-report/budgets.txt
# (or has no budget). CI runs this after the cross builds. Re-baseline after an intended
# growth with: size-report/report.sh --rebaseline   (see size-report/README.md)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUDGETS="$ROOT/size-report/budgets.txt"
ROUTER_CAP=2097152   # 2 MiB: the hard ceiling for any router binary (issue 5)
fail=0 checked=0
for bin in "$ROOT"/dist/bin/*/*/sprig; do
  [ -f "$bin" ] || continue
  profile=$(basename "$(dirname "$bin")")
  target=$(basename "$(dirname "$(dirname "$bin")")")
  size=$(stat -c %s "$bin")
  budget=$(awk -v t="$target" -v p="$profile" '$1 == t && $2 == p { print $3 }' "$BUDGETS")
  checked=$((checked + 1))
  if [ -z "$budget" ]; then
    echo "FAIL size: $target $profile = $size bytes has no budget in size-report/budgets.txt"; fail=1
  elif [ "$size" -gt "$budget" ]; then
    echo "FAIL size: $target $profile = $size bytes > budget $budget (+$((size - budget)))"; fail=1
  else
    echo "ok size: $target $profile = $size bytes <= budget $budget"
  fi
  if [ "$profile" = router ] && [ "$size" -gt "$ROUTER_CAP" ]; then
    echo "FAIL size: $target router = $size bytes > 2 MiB cap"; fail=1
  fi
done
[ "$checked" -gt 0 ] || { echo "FAIL size: no binaries in dist/bin to check"; exit 1; }
if [ "$fail" = 1 ]; then
  echo "A binary outgrew its budget. If the growth is intended, re-baseline: size-report/report.sh --rebaseline"
  exit 1
fi
