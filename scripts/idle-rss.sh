#!/usr/bin/env bash
# The bench's idle state, alone and with a breakdown: start sprig with the bench's config and
# group (200 devices, scenario subscriptions, shadow), serve one TLS device (dev-0000), settle,
# then print VmRSS and what it is made of (/proc/PID/smaps: the binary's text, read-only data,
# data; heap; stack; other anonymous memory).
#
#   scripts/idle-rss.sh [--runs N] [--settle S] [--traffic] [--madvise cold|pageout]
#                       [--wrap 'CMD ARGS' | --qemu TARGET] [BINARY]
#
# --steady (with --wrap valgrind --tool=callgrind --instr-atstart=no): switch callgrind's
# instrumentation on once sprig listens, before the device: what runs after start-up only.
# --traffic: after the first device, a short session of the other kinds before settling (QoS 0
# and QoS 1 fan-in with a subscriber, shadow updates), i.e. idle after real work.
# BINARY defaults to the shipped x86_64 router build (dist/bin/.../sprig, musl/build.sh).
# --wrap runs sprig under CMD (e.g. valgrind for musl/order-symbols.sh); the breakdown is then
# skipped (it would be the wrapper's). IDLE_RSS_DETAIL=1 lists every resident mapping.
# --madvise cold|pageout: then give the binary's pages back from outside (process_madvise),
# report, serve one more device and report the page faults that cost.
# --qemu TARGET runs a cross build under qemu-user (musl/qemu.sh) and prints the breakdown of
# the qemu process: only the guest binary's own mappings (text, rodata, data) mean anything
# there (qemu reads the guest code it translates, so its text pages fault as on the target);
# heap, stack and anonymous memory are qemu's. Certificates: $BENCH_DIR/certs (scripts/bench.sh's cache)
# when it holds the 200 devices, else generated once into target/idle-rss/certs.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

RUNS=1
SETTLE=1
WRAP=
TRAFFIC=0
STEADY=0
QEMU=0
MADVISE=
BIN=$REPO/dist/bin/x86_64-unknown-linux-musl/router/sprig
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --settle) SETTLE=$2; shift 2 ;;
    --wrap) WRAP=$2; shift 2 ;;
    --qemu)
      # shellcheck source=musl/qemu.sh
      . "$REPO/musl/qemu.sh"
      WRAP=$(qemu_cmd "$2"); QEMU_CPU=$(qemu_cpu "$2"); export QEMU_CPU; QEMU=1; shift 2 ;;
    --traffic) TRAFFIC=1; shift ;;
    --steady) STEADY=1; shift ;;
    --madvise) MADVISE=$2; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    -*) echo "idle-rss.sh: unknown option $1" >&2; exit 2 ;;
    *) BIN=$1; shift ;;
  esac
done
[ -x "$BIN" ] || { echo "idle-rss.sh: $BIN not built (musl/build.sh x86_64-unknown-linux-musl)" >&2; exit 1; }
DEVICES=200
WORK=$REPO/target/idle-rss
mkdir -p "$WORK"

LOADGEN=$REPO/tools/loadgen/target/release/sprig-loadgen
[ -x "$LOADGEN" ] || cargo build --release --locked -q --manifest-path tools/loadgen/Cargo.toml

CERTS=${BENCH_DIR:-$REPO/target/bench}/certs
if [ ! -s "$CERTS/dev-0199.crt" ]; then
  CERTS=$WORK/certs
  mkdir -p "$CERTS"
  ec() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 "$@" 2>/dev/null; }
  [ -s "$CERTS/ca.crt" ] || ec -keyout "$CERTS/ca.key" -out "$CERTS/ca.crt" -subj /CN=sprig-idle-ca
  [ -s "$CERTS/server.crt" ] || ec -keyout "$CERTS/server.key" -out "$CERTS/server.crt" -subj /CN=localhost \
    -CA "$CERTS/ca.crt" -CAkey "$CERTS/ca.key" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
  for i in $(seq 0 $((DEVICES - 1))); do
    n=$(printf dev-%04d "$i")
    [ -s "$CERTS/$n.crt" ] || ec -keyout "$CERTS/$n.key" -out "$CERTS/$n.crt" -subj "/CN=$n" \
      -CA "$CERTS/ca.crt" -CAkey "$CERTS/ca.key" -addext "extendedKeyUsage=clientAuth"
  done
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ROOT=$WORK/root
rm -rf "$ROOT"
mkdir -p "$ROOT/config" "$ROOT/certs" "$ROOT/write/ggc/deployment/group" "$ROOT/run"
cp "$CERTS/ca.crt" "$CERTS/server.crt" "$CERTS/server.key" "$ROOT/certs/"
"$LOADGEN" group --certs "$CERTS" --devices $DEVICES --scenarios 1 --route 0 --shadow 1 \
  > "$ROOT/write/ggc/deployment/group/group.json"
# The bench's config.json (scripts/bench.sh, sprig_root).
cat > "$ROOT/config/config.json" <<EOF
{
  "coreThing": { "caPath": "ca.crt", "certPath": "server.crt", "keyPath": "server.key",
    "thingArn": "arn:aws:iot:us-east-1:123456789012:thing/bench-core", "iotHost": "none",
    "ggHost": "greengrass-ats.iot.us-east-1.amazonaws.com", "ggMqttPort": $PORT, "keepAlive": 600 },
  "runtime": { "cgroup": { "useSystemd": "no" }, "maxWorkItemCount": ${IDLE_RSS_WORK_ITEMS:-1024} },
  "managedRespawn": false,
  "writeDirectory": "$ROOT/write",
  "pidFileDirectory": "$ROOT/run",
  "crypto": { "caPath": "file://$ROOT/certs/ca.crt",
    "principals": { "MQTTServerCertificate": { "privateKeyPath": "file://$ROOT/certs/server.key",
      "certificatePath": "file://$ROOT/certs/server.crt" } } },
  "sprig": { "maxConnections": $((DEVICES + 10)) }
}
EOF
insecure=
[ "$(cat /proc/sys/fs/protected_hardlinks /proc/sys/fs/protected_symlinks 2>/dev/null | tr -d '\n')" = 11 ] || insecure=-i

PID=
stop() { [ -z "$PID" ] || { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; }; }
trap stop EXIT

for run in $(seq "$RUNS"); do
  # shellcheck disable=SC2086
  $WRAP "$BIN" start --foreground $insecure -r "$ROOT" >"$WORK/sprig.log" 2>&1 &
  PID=$!
  if [ "$STEADY" = 1 ]; then
    for _ in $(seq 600); do ss -ltn | grep -q ":$PORT " && break; sleep 0.1; done
    sleep 1
    callgrind_control -i on "$PID" >/dev/null
  fi
  served=0
  for _ in $(seq 600); do
    if "$LOADGEN" idle --certs "$CERTS" --addr "127.0.0.1:$PORT" --connections 1 --hold 0 --first 0 \
        2>/dev/null | grep -q '"connections":1,'; then served=1; break; fi
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  [ "$served" = 1 ] || { echo "idle-rss.sh: no device accepted; see $WORK/sprig.log" >&2; exit 1; }
  if [ "$TRAFFIC" = 1 ]; then
    lg() { "$LOADGEN" "$@" --certs "$CERTS" --addr "127.0.0.1:$PORT" --pid "$PID" >/dev/null; }
    lg fanin --publishers 2 --messages 50 --qos 0
    lg fanin --publishers 2 --messages 50 --qos 1
    lg shadow --publishers 1 --messages 3
  fi
  sleep "$SETTLE"
  if [ -n "$WRAP" ] && [ "$QEMU" = 0 ]; then stop; continue; fi
  py() { python3 "$REPO/scripts/idle-rss.py" "$@"; }
  py breakdown "$PID" "$(readlink -f "$BIN")" "run $run"
  if [ -n "$MADVISE" ]; then
    # The trade of giving the binary's pages back once idle: what the next device costs.
    py madvise "$PID" "$(readlink -f "$BIN")" "$MADVISE"
    sleep 1
    py breakdown "$PID" "$(readlink -f "$BIN")" "run $run after MADV_${MADVISE^^}"
    read -r min0 maj0 < <(py faults "$PID")
    "$LOADGEN" idle --certs "$CERTS" --addr "127.0.0.1:$PORT" --connections 1 --hold 0 --first 0 >/dev/null
    read -r min1 maj1 < <(py faults "$PID")
    sleep "$SETTLE"
    py breakdown "$PID" "$(readlink -f "$BIN")" "run $run after the next device ($((min1 - min0)) minor, $((maj1 - maj0)) major faults)"
  fi
  stop
done
