#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what the tests need, then runs them.
# This is the README's test command; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. System packages the tests drive as real peers.
if ! command -v mosquitto >/dev/null || ! command -v mosquitto_pub >/dev/null || ! command -v openssl >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends mosquitto mosquitto-clients openssl
fi

# 2. Pinned Python test clients (paho-mqtt, ...), in a venv of our own.
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q -r tests/requirements.txt
export SPRIG_TEST_PYTHON="$PWD/.venv/bin/python"

# 3. The tests.
cargo test --locked 2>&1
