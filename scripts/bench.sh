#!/usr/bin/env bash
# The one benchmark command: sprig and mosquitto side by side on loopback, same scenarios, same
# TLS client-certificate devices, brokers alternated run by run, medians of the runs, ratios
# taken within each run. Writes BENCHMARKS.md (default run) or only prints (--quick).
#
#   scripts/bench.sh                  # full run (5 runs per broker, about 5 minutes), writes BENCHMARKS.md
#   scripts/bench.sh --quick          # CI smoke: one short run, prints, writes nothing
#   scripts/bench.sh --mosquitto-only # the mosquitto column alone
#   scripts/bench.sh --runs 5 --out /tmp/B.md
#   scripts/bench.sh --host-build     # measure the host glibc release build instead of the
#                                     # static musl x86_64 binary that ships (musl/build.sh)
#
# Needs: cargo, openssl, mosquitto (Debian package), python3. Run as any user; as root
# mosquitto is told `user root` so it can read the generated keys.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

QUICK=0
RUNS=5
OUT=BENCHMARKS.md
BROKERS="mosquitto sprig"
HOST_BUILD=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; RUNS=1; OUT= ;;
    --runs) RUNS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --mosquitto-only) BROKERS=mosquitto ;;
    --sprig-only) BROKERS=sprig ;;
    --host-build) HOST_BUILD=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

# Scenario sizes. The full run keeps each measurement long enough for 10 ms CPU ticks to matter
# little (>= 0.3 CPU-seconds for the throughput scenarios on this class of machine).
if [ "$QUICK" = 1 ]; then
  FANIN_MSGS=2000 LAT_RATE=1000 LAT_SECS=2 FANOUT_RATE=200 FANOUT_SECS=2 IDLE="50 200"
  ROUTE_MSGS=5000 ROUTE_SUBS="10 1000" SHADOW_MSGS=100
else
  FANIN_MSGS=25000 LAT_RATE=1000 LAT_SECS=5 FANOUT_RATE=200 FANOUT_SECS=5 IDLE="200 1000"
  ROUTE_MSGS=100000 ROUTE_SUBS="10 1000 10000" SHADOW_MSGS=1000
fi
FANIN_PUBS=8
FANOUT_SUBS=50
# Devices with certificates: scenario roles dev-0000..0099; the idle scenario holds dev-0000
# and up (N devices, each its own certificate and client id).
IDLE_MAX=$(echo $IDLE | tr ' ' '\n' | sort -n | tail -1)
DEVICES=$(( IDLE_MAX > 100 ? IDLE_MAX : 100 ))
# sprig's group holds at most 200 devices (src/limits.rs MAX_GROUP_DEVICES, the Greengrass
# group limit), so sprig runs only the idle sizes that fit; the report says so.
SPRIG_MAX_GROUP_DEVICES=$(sed -n 's/^pub const MAX_GROUP_DEVICES: usize = \([0-9_]*\);.*/\1/p' src/limits.rs | tr -d _)
SPRIG_MAX_GROUP_DEVICES=${SPRIG_MAX_GROUP_DEVICES:-200}

WORK=${BENCH_DIR:-$REPO/target/bench}
mkdir -p "$WORK"
RESULTS=$WORK/results.jsonl
: > "$RESULTS"
: > "$WORK/loadgen.err"; : > "$WORK/mosquitto.log"; : > "$WORK/sprig.log"
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# Build (release, the shipped profile) and tools.
log "building sprig (release) and the load generator"
nice -n 5 cargo build --release --locked -q --manifest-path tools/loadgen/Cargo.toml
# By default the binary users install: static musl, std built for size (musl/build.sh). Its
# RSS differs from a glibc build's (no shared libraries, musl's allocator).
if [ "$HOST_BUILD" = 0 ] && [ "$(uname -m)" = x86_64 ]; then
  nice -n 5 musl/build.sh x86_64-unknown-linux-musl --profile router >&2
  SPRIG=$REPO/dist/bin/x86_64-unknown-linux-musl/router/sprig
  export SPRIG_BUILD="the shipped static build (x86_64-unknown-linux-musl, router profile, musl/build.sh: opt-level z, fat LTO, std built for size)"
else
  nice -n 5 cargo build --release --locked -q
  SPRIG=$REPO/target/release/sprig
  export SPRIG_BUILD="the host release build (glibc, opt-level z, LTO), not the static musl build that ships"
fi
LOADGEN=$REPO/tools/loadgen/target/release/sprig-loadgen
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$MOSQUITTO" ] || { echo "bench.sh: mosquitto not installed (apt-get install mosquitto)" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Certificates (openssl CLI): one CA, a server certificate for localhost, one P-256 key and
# certificate per device. Cached in $WORK/certs between runs.
CERTS=$WORK/certs
mkdir -p "$CERTS"
ec() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 "$@" 2>/dev/null; }
if [ ! -s "$CERTS/ca.crt" ]; then
  log "generating CA and server certificate"
  ec -keyout "$CERTS/ca.key" -out "$CERTS/ca.crt" -subj /CN=sprig-bench-ca
  ec -keyout "$CERTS/server.key" -out "$CERTS/server.crt" -subj /CN=localhost \
    -CA "$CERTS/ca.crt" -CAkey "$CERTS/ca.key" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=serverAuth"
fi
missing=0
for i in $(seq 0 $((DEVICES - 1))); do
  n=$(printf dev-%04d "$i")
  [ -s "$CERTS/$n.crt" ] && continue
  missing=$((missing + 1))
  ec -keyout "$CERTS/$n.key" -out "$CERTS/$n.crt" -subj "/CN=$n" \
    -CA "$CERTS/ca.crt" -CAkey "$CERTS/ca.key" \
    -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=clientAuth"
done
[ "$missing" = 0 ] || log "generated $missing device certificates"

ulimit -n 4096 2>/dev/null || log "could not raise the open-file limit; 1,000 idle devices may fail"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------------------------------------
# mosquitto: TLS listener on loopback requiring client certificates, TLS 1.3 only, defaults for
# everything about queues (max_queued_messages 1000, max_inflight_messages 20), Nagle off
# (set_tcp_nodelay true) because sprig's sockets are TCP_NODELAY too, no persistence.
MOSQ_PORT=$(free_port)
MOSQ_CONF=$WORK/mosquitto.conf
cat > "$MOSQ_CONF" <<EOF
$( [ "$(id -u)" = 0 ] && echo "user root" )
per_listener_settings false
persistence false
log_dest stderr
log_type error
allow_anonymous true
max_queued_messages 1000
max_inflight_messages 20
set_tcp_nodelay true
listener $MOSQ_PORT 127.0.0.1
cafile $CERTS/ca.crt
certfile $CERTS/server.crt
keyfile $CERTS/server.key
require_certificate true
use_identity_as_username false
tls_version tlsv1.3
EOF

# sprig: a temp root with config.json (offline: iotHost "none", the same server certificate
# as mosquitto via crypto.principals.MQTTServerCertificate) and a group.json per scenario set.
SPRIG_PORT=$(free_port)
SPRIG_ROOT=$WORK/sprig-root
sprig_root() { # $1 = group.json text file
  rm -rf "$SPRIG_ROOT"
  mkdir -p "$SPRIG_ROOT/config" "$SPRIG_ROOT/certs" "$SPRIG_ROOT/write/ggc/deployment/group" "$SPRIG_ROOT/run"
  cp "$CERTS/ca.crt" "$CERTS/server.crt" "$CERTS/server.key" "$SPRIG_ROOT/certs/"
  cat > "$SPRIG_ROOT/config/config.json" <<EOF
{
  "coreThing": {
    "caPath": "ca.crt",
    "certPath": "server.crt",
    "keyPath": "server.key",
    "thingArn": "arn:aws:iot:us-east-1:123456789012:thing/bench-core",
    "iotHost": "none",
    "ggHost": "greengrass-ats.iot.us-east-1.amazonaws.com",
    "ggMqttPort": $SPRIG_PORT,
    "keepAlive": 600
  },
  "runtime": { "cgroup": { "useSystemd": "no" }, "maxWorkItemCount": 1024 },
  "managedRespawn": false,
  "writeDirectory": "$SPRIG_ROOT/write",
  "pidFileDirectory": "$SPRIG_ROOT/run",
  "crypto": {
    "caPath": "file://$SPRIG_ROOT/certs/ca.crt",
    "principals": {
      "MQTTServerCertificate": {
        "privateKeyPath": "file://$SPRIG_ROOT/certs/server.key",
        "certificatePath": "file://$SPRIG_ROOT/certs/server.crt"
      }
    }
  },
  "sprig": { "maxConnections": $((DEVICES + 10)) }
}
EOF
  cp "$1" "$SPRIG_ROOT/write/ggc/deployment/group/group.json"
}
# How sprig runs in the foreground (override with SPRIG_START="... {ROOT} ..."). `-i` only
# when the machine lacks fs.protected_hardlinks/symlinks (sprig refuses to start without -i
# then, as Greengrass does); it changes nothing on the message path.
insecure=
[ "$(cat /proc/sys/fs/protected_hardlinks /proc/sys/fs/protected_symlinks 2>/dev/null | tr -d '\n')" = 11 ] || insecure=-i
SPRIG_START=${SPRIG_START:-"$SPRIG start --foreground $insecure -r {ROOT}"}
sprig_cmd() { echo "${SPRIG_START//\{ROOT\}/$SPRIG_ROOT}"; }

GROUP_MAIN=$WORK/group-main.json
SPRIG_DEVICES=$(( DEVICES < SPRIG_MAX_GROUP_DEVICES ? DEVICES : SPRIG_MAX_GROUP_DEVICES ))
"$LOADGEN" group --certs "$CERTS" --devices "$SPRIG_DEVICES" --scenarios 1 --route 0 --shadow 1 > "$GROUP_MAIN"

# ---------------------------------------------------------------------------------------------
BROKER_PID=
stop_broker() {
  [ -n "$BROKER_PID" ] || return 0
  kill "$BROKER_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$BROKER_PID" 2>/dev/null || true
  wait "$BROKER_PID" 2>/dev/null || true
  BROKER_PID=
}
trap stop_broker EXIT

port_of() { [ "$1" = mosquitto ] && echo "$MOSQ_PORT" || echo "$SPRIG_PORT"; }
start_cmd() {
  if [ "$1" = mosquitto ]; then echo "$MOSQUITTO -c $MOSQ_CONF"; else sprig_cmd; fi
}

start_broker() { # $1 broker; waits until a device is accepted
  local b=$1
  # shellcheck disable=SC2046
  $(start_cmd "$b") >>"$WORK/$b.log" 2>&1 &
  BROKER_PID=$!
  for _ in $(seq 300); do
    if "$LOADGEN" idle --certs "$CERTS" --addr "127.0.0.1:$(port_of "$b")" --connections 1 --hold 0 --first 0 \
        2>/dev/null | grep -q '"connections":1,'; then
      return 0
    fi
    kill -0 "$BROKER_PID" 2>/dev/null || { log "$b exited; see $WORK/$b.log"; BROKER_PID=; return 1; }
    sleep 0.1
  done
  log "$b did not accept a device within 30 s"; stop_broker; return 1
}

record() { # $1 broker, $2 run, $3 label; stdin: one JSON line from the load generator
  local line
  line=$(cat)
  [ -n "$line" ] || return 0
  printf '{"broker":"%s","run":%s,"label":"%s","data":%s}\n' "$1" "$2" "$3" "$line" >> "$RESULTS"
  printf '  %-10s %-14s %s\n' "$1" "$3" "$line" >&2
}

lg() { # $1 broker, then loadgen args
  local b=$1; shift
  "$LOADGEN" "$@" --certs "$CERTS" --addr "127.0.0.1:$(port_of "$b")" --pid "$BROKER_PID" \
    2>>"$WORK/loadgen.err" || { log "$b: loadgen $1 failed: $(tail -1 "$WORK/loadgen.err")"; true; }
}

run_broker() { # $1 broker, $2 run number
  local b=$1 r=$2 n
  log "run $r: $b"
  if [ "$b" = sprig ]; then sprig_root "$GROUP_MAIN"; fi
  # Cold start to the first accepted device, and idle RSS after serving it (settled 1 s).
  # shellcheck disable=SC2046
  "$LOADGEN" coldstart --certs "$CERTS" --addr "127.0.0.1:$(port_of "$b")" -- $(start_cmd "$b") \
    2>>"$WORK/loadgen.err" | record "$b" "$r" coldstart || true
  start_broker "$b" || return 0
  for n in $IDLE; do
    if [ "$b" = sprig ] && [ "$n" -gt "$SPRIG_DEVICES" ]; then continue; fi
    lg "$b" idle --first 0 --connections "$n" --hold 2 | record "$b" "$r" "idle-$n"
  done
  lg "$b" fanin --publishers $FANIN_PUBS --messages $FANIN_MSGS --qos 0 | record "$b" "$r" fanin-q0
  lg "$b" fanin --publishers $FANIN_PUBS --messages $FANIN_MSGS --qos 1 | record "$b" "$r" fanin-q1
  lg "$b" latency --rate $LAT_RATE --secs $LAT_SECS | record "$b" "$r" latency
  lg "$b" fanout --subscribers $FANOUT_SUBS --rate $FANOUT_RATE --secs $FANOUT_SECS | record "$b" "$r" fanout
  # The local shadow service (sprig only: mosquitto has none): each publisher updates its own
  # shadow and waits for update/accepted; every update is stored (tmp, fsync, rename) first.
  if [ "$b" = sprig ]; then
    lg "$b" shadow --publishers $FANIN_PUBS --messages $SHADOW_MSGS | record "$b" "$r" shadow
  fi
  # Routing cost against N subscriptions: sprig holds them in group.json (N-1 that never match
  # plus the measured one, all with the publisher as Source); mosquitto holds N-1 non-matching
  # filters subscribed by one idle client plus the sink's one.
  for n in $ROUTE_SUBS; do
    if [ "$b" = sprig ]; then
      stop_broker
      "$LOADGEN" group --certs "$CERTS" --devices 100 --scenarios 0 --route 1 --noise $((n - 1)) \
        > "$WORK/group-route-$n.json" 2>/dev/null
      sprig_root "$WORK/group-route-$n.json"
      start_broker sprig || continue
      lg "$b" fanin --publishers 1 --messages $ROUTE_MSGS --qos 0 --topic bench/route | record "$b" "$r" "route-$n"
    else
      lg "$b" fanin --publishers 1 --messages $ROUTE_MSGS --qos 0 --topic bench/route \
        --noise-subs $((n - 1)) | record "$b" "$r" "route-$n"
    fi
  done
  stop_broker
}

for r in $(seq 1 "$RUNS"); do
  # Alternate which broker goes first, so neither always meets a warmer (or busier) machine.
  if [ $((r % 2)) = 1 ]; then order=$BROKERS; else order=$(echo "$BROKERS" | tr ' ' '\n' | tac | tr '\n' ' '); fi
  for b in $order; do run_broker "$b" "$r"; done
done

# ---------------------------------------------------------------------------------------------
# Report: medians per broker, ratios per run (sprig / mosquitto) and their median.
MACHINE_CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
export MACHINE="$(nproc) CPUs, ${MACHINE_CPU:-unknown CPU}, Linux $(uname -r), $(free -m | awk '/^Mem:/{print $2}') MiB RAM"
export VERSIONS="sprig $("$SPRIG" --version 2>/dev/null | awk '{print $2}') ($(git rev-parse --short HEAD)$(git diff --quiet || echo ', dirty')), $("$MOSQUITTO" -h 2>/dev/null | head -1), $(openssl version | awk '{print $1, $2}'), $(rustc --version | awk '{print $1, $2}')"
export SHADOW_MSGS
export RUNS QUICK IDLE FANIN_PUBS FANIN_MSGS LAT_RATE LAT_SECS FANOUT_SUBS FANOUT_RATE FANOUT_SECS ROUTE_MSGS ROUTE_SUBS SPRIG_DEVICES
export DATE=$(date -u +"%Y-%m-%d %H:%M UTC")
python3 "$REPO/scripts/bench-report.py" "$RESULTS" > "$WORK/BENCHMARKS.md"
cat "$WORK/BENCHMARKS.md"
if [ -n "$OUT" ]; then
  # Sections measured by other scripts are kept: Lambda (tests/lambda.rs,
  # bench_lambda_round_trips) and the stream manager (scripts/bench-streams.sh).
  if [ -f "$OUT" ]; then
    sed -n '/^<!-- lambda-bench:begin -->$/,/^<!-- lambda-bench:end -->$/p' "$OUT" >> "$WORK/BENCHMARKS.md"
    sed -n '/^<!-- streams-bench begin -->$/,/^<!-- streams-bench end -->$/p' "$OUT" >> "$WORK/BENCHMARKS.md"
  fi
  cp "$WORK/BENCHMARKS.md" "$OUT"; log "wrote $OUT"
fi
