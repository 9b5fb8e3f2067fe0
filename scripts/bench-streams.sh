#!/usr/bin/env bash
# Stream manager benchmark (issue 14): appends per second and payload bytes per CPU-second,
# the stream store beside the cloud spool (in-process, examples/bench_streams.rs) and through
# the server (the stock Python client one at a time, and raw pipelined frames), release build.
# Writes the "Stream manager" section of BENCHMARKS.md (between its markers; scripts/bench.sh
# rewrites the rest of the file). Not run in CI; a few minutes on 2 cores (two release builds).
#
#   scripts/bench-streams.sh            # measure and write the section
#   scripts/bench-streams.sh --print    # measure and print only
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${SPRIG_TEST_PYTHON:-$PWD/.venv/bin/python}
N_CLIENT=${N_CLIENT:-5000}
N_RAW=${N_RAW:-50000}

# The server rows run the shipped static binary (musl/build.sh ... --profile full) when it is
# there, else a host release build.
BIN=${SPRIG_BENCH_BIN:-dist/bin/x86_64-unknown-linux-musl/full/sprig}
if [ ! -x "$BIN" ]; then cargo build --release --quiet; BIN=target/release/sprig; fi
cargo build --release --quiet --example bench_streams
store_rows=$(cargo run --release --quiet --example bench_streams -- "target/bench-streams")

work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/root/config" "$work/root/certs" "$work/write/ggc/deployment/group" "$work/run"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=ca \
  -keyout "$work/root/certs/group-ca.key" -out "$work/root/certs/group-ca.pem" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mqtt=$(free_port); port=$(free_port)
cat > "$work/root/config/config.json" <<EOF
{"coreThing":{"caPath":"root.ca.pem","certPath":"c.pem","keyPath":"c.key","thingArn":"arn:aws:iot:us-east-1:123456789012:thing/bench",
 "iotHost":"none","ggHost":"none","ggMqttPort":$mqtt,"keepAlive":600},"runtime":{"cgroup":{"useSystemd":"no"}},
 "managedRespawn":false,"writeDirectory":"$work/write","pidFileDirectory":"$work/run","sprig":{"streamStoreMaxBytes":1073741824}}
EOF
cat > "$work/write/ggc/deployment/group/group.json" <<EOF
{"FunctionDefinitionVersion":{"Functions":[{"Id":"sm","FunctionArn":"arn:aws:lambda:::function:GGStreamManager:1",
 "FunctionConfiguration":{"MemorySize":128000,"Pinned":true,"Timeout":3,"Environment":{"Variables":{
 "STREAM_MANAGER_SERVER_PORT":"$port","STREAM_MANAGER_AUTHENTICATE_CLIENT":"false"}}}}]}}
EOF
"$BIN" start -r "$work/root" --foreground -i >"$work/daemon.log" 2>&1 &
pid=$!
for _ in $(seq 100); do "$PY" -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null && break; sleep 0.1; done
cpu() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }

coproc CLIENT { STREAM_MANAGER_SERVER_PORT=$port "$PY" tests/py/stream_client.py bench "$port" "$N_CLIENT" "$N_RAW" 2>"$work/client.err"; }
phase() { # $1 = phase name: runs it, prints "name n secs cpu_ticks"
  local c0 line; c0=$(cpu); echo >&"${CLIENT[1]}"
  read -r line <&"${CLIENT[0]}"
  echo "$1 $(echo "$line" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["n"], d["secs"])') $(( $(cpu) - c0 ))"
}
r1=$(phase client); r2=$(phase pipelined)
rss=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")
server_rows=$(for r in "$r1" "$r2"; do
  echo "$r" | awk -v rss="$rss" '{
    name = ($1 == "client") ? "server, stock client (one append at a time, File)" : "server, pipelined frames (File)";
    mbcpu = ($4 > 0) ? sprintf("%.0f", $2 * 256 / 1e6 / ($4 / 100)) : "< 1 tick";
    printf "| %s | %d | %.0f | %s |\n", name, $2, $2 / $3, mbcpu }'
done)

section=$(cat <<EOF
<!-- streams-bench begin -->
## Stream manager (scripts/bench-streams.sh)

Generated on $(date -u '+%Y-%m-%d %H:%M UTC') ($(git rev-parse --short HEAD)), shared 2-core machine. In-process rows: host release
build; server rows: \`$BIN\`.
The in-process rows call \`Spool::push\` / \`Store::append\` directly; the server rows count sprig's CPU
only (utime + stime of the daemon, 10 ms ticks; the Python client runs on the same CPUs). sprig's RSS
after the server rows: ${rss} KiB.

$store_rows
$server_rows
<!-- streams-bench end -->
EOF
)
if [ "${1:-}" = --print ]; then echo "$section"; exit 0; fi
"$PY" - "$section" <<'EOF'
import re, sys
sec = sys.argv[1]
text = open("BENCHMARKS.md").read()
pat = re.compile(r"<!-- streams-bench begin -->.*?<!-- streams-bench end -->", re.S)
text = pat.sub(lambda m: sec, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + sec + "\n"
open("BENCHMARKS.md", "w").write(text)
EOF
echo "$section"
