#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS seconds each (default 20), starting
# from the committed seeds in fuzz/seeds/<target>. scripts/test.sh calls this; for a long run:
#
#   FUZZ_SECONDS=600 scripts/fuzz-smoke.sh            # every target, 10 minutes each
#   FUZZ_SECONDS=600 scripts/fuzz-smoke.sh group_json # one target
#
# A crash leaves its input in fuzz/artifacts/<target>/ and makes this script fail (after the
# other targets ran). Keep a reproducer under tests/data/fuzz-regressions/<target>/ with a test.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${FUZZ_SECONDS:-20}
CARGO_FUZZ_VERSION=0.13.1

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz-smoke: SKIPPED: no nightly Rust toolchain (cargo-fuzz needs one; rustup toolchain install nightly)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz-smoke: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi

cd fuzz
targets=("$@")
if [ ${#targets[@]} = 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

echo "fuzz-smoke: building ${targets[*]}"
nice -n 5 cargo +nightly fuzz build 2>&1 | tail -1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  seeds=seeds/$t
  [ -d "$seeds" ] || { echo "fuzz-smoke: $t has no seeds in fuzz/$seeds"; failed+=("$t(no seeds)"); continue; }
  echo "fuzz-smoke: $t for ${SECS}s"
  # New inputs go to the scratch corpus (first directory); the committed seeds stay as they are.
  if nice -n 5 cargo +nightly fuzz run "$t" "$work/$t" "$seeds" -- \
      -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$work/$t.log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^Done' "$work/$t.log" | tr '\n' ' '
    echo
  else
    failed+=("$t")
    tail -40 "$work/$t.log"
    echo "fuzz-smoke: $t FAILED; reproducer in fuzz/artifacts/$t/"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz-smoke: failures: ${failed[*]}"
  exit 1
fi
echo "fuzz-smoke: ${#targets[@]} targets, ${SECS}s each, no crashes"
