#!/usr/bin/env bash
# Cross-target checks, called by scripts/test.sh after the host tests:
#  1. scripts/dist.sh: static musl builds (router profile for every target, full for the Pi
#     Zero and x86_64), each checked static/stripped/right-arch and run (`--version`) under
#     qemu-user; tarballs, ipks, .deb, SHA256SUMS.
#  2. packaging/test_packages.py: structure, control fields, modes and architecture of every
#     ipk, the .deb (dpkg-deb -I/-c), and the tarballs' install script.
#  3. size-report/check-budgets.sh: every built binary within size-report/budgets.txt.
#  4. The integration scenarios (tests/check.rs, broker, router, shadow, demo, cloud — those
#     that exist) against the Pi Zero (Armv6, qemu -cpu arm1176, full profile) and aarch64
#     (router profile) binaries, through SPRIG_TEST_BIN pointing at a qemu wrapper. Not
#     tests/daemon.rs: it asserts `Threads: 1`, and qemu-user adds its own threads.
# Env: CROSS_SCENARIO_TESTS (test files), CROSS_SCENARIO_TARGETS (targets),
#      CROSS_SKIP_SCENARIOS=1 to skip 4.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. musl/qemu.sh
t0=$(date +%s)
step() { echo "== test-cross: $* ($(( $(date +%s) - t0 ))s)"; }

step "dist (builds)"
scripts/dist.sh

step "package checks"
python3 packaging/test_packages.py

step "size budgets"
size-report/check-budgets.sh

SCENARIOS=${CROSS_SCENARIO_TESTS:-"check broker router shadow demo cloud"}
SCENARIO_TARGETS=${CROSS_SCENARIO_TARGETS:-"arm-unknown-linux-musleabihf aarch64-unknown-linux-musl"}
if [ "${CROSS_SKIP_SCENARIOS:-0}" != 1 ]; then
  for target in $SCENARIO_TARGETS; do
    bin="$ROOT/dist/bin/$target/full/sprig"
    [ -f "$bin" ] || bin="$ROOT/dist/bin/$target/router/sprig"
    wrapper="$ROOT/target-cross/qemu/$target/sprig"
    mkdir -p "$(dirname "$wrapper")"
    printf '#!/bin/sh\nexec %s %s "$@"\n' "$(qemu_cmd "$target")" "$bin" > "$wrapper"
    chmod +x "$wrapper"
    ran=0
    for t in $SCENARIOS; do
      if [ ! -f "tests/$t.rs" ]; then
        echo "test-cross: tests/$t.rs does not exist yet, skipped on $target"
        continue
      fi
      step "scenarios tests/$t.rs on $target ($(basename "$(dirname "$bin")") profile, $(qemu_cmd "$target"))"
      SPRIG_TEST_BIN="$wrapper" cargo test --locked --test "$t" 2>&1
      ran=$((ran + 1))
    done
    echo "test-cross: $ran scenario test files ran on $target"
  done
fi
step "done"
