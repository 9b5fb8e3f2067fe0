#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what the tests need, then runs them.
# This is the README's test command; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. System packages the tests drive as real peers (mosquitto as the cloud and as the
#    benchmark peer, its clients as devices, openssl for test certificates, qemu-user for the
#    ARM binaries, tinyproxy as an HTTP CONNECT proxy, curl for the executable Lambda in
#    tests/lambda.rs; its Python functions run on the system python3).
need_apt=0
for cmd in mosquitto mosquitto_pub openssl qemu-arm-static tinyproxy curl python3; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || [ -x "/usr/bin/$cmd" ] || need_apt=1
done
if [ "$need_apt" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends \
    mosquitto mosquitto-clients openssl qemu-user-static tinyproxy file binutils curl python3
fi

# 2. Pinned Python test clients (paho-mqtt, the AWS IoT device SDK, ...), in a venv of our own.
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
export SPRIG_TEST_PYTHON="$PWD/.venv/bin/python"

# 3. The tests of the host build.
cargo test --locked 2>&1

# 3b. Every parser's fuzz target for FUZZ_SECONDS (default 20) each (proof work; skips without nightly).
if [ -x scripts/fuzz-smoke.sh ]; then ./scripts/fuzz-smoke.sh; fi

# 4. Cross builds, size budgets and the ARM scenarios under qemu (when present).
if [ -x scripts/test-cross.sh ]; then ./scripts/test-cross.sh; fi
