"""A small stand-in for the AWS IoT Device Shadow service, for tests/shadow_sync.rs: a paho
client on the test mosquitto (the "cloud") that answers `$aws/things/<thing>/shadow/{update,get,
delete}` the way AWS IoT does (accepted/rejected, delta, documents, versions, per-leaf metadata
with epoch-second timestamps, null deletes), and plays the AWS IoT console: every line appended
to CONSOLE_FILE (`THING JSON-STATE`) is applied as an update with clientToken `console-N`.

Usage: python cloud_shadow.py PORT CA CERT KEY CONSOLE_FILE
Prints `ready`, then one line per request (`req THING OP BODY`) and per state change
(`shadow THING VERSION STATE-JSON`); the Rust test judges.
"""
import json
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt

PREFIX = "$aws/things/"
lock = threading.Lock()
shadows = {}  # thing -> {"state": {...}, "metadata": {...}, "version": n}
deleted_version = {}


def say(line):
    print(line, flush=True)


def meta_of(v, ts):
    if isinstance(v, dict):
        return {k: meta_of(x, ts) for k, x in v.items()}
    if isinstance(v, list):
        return [meta_of(x, ts) for x in v]
    return {"timestamp": ts}


def merge(target, meta, patch, ts):
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
            meta.pop(k, None)
        elif isinstance(v, dict):
            if not isinstance(target.get(k), dict):
                target[k] = {}
                meta[k] = {}
            merge(target[k], meta.setdefault(k, {}), v, ts)
        else:
            target[k] = v
            meta[k] = meta_of(v, ts)


def delta(desired, reported):
    out = {}
    for k, v in desired.items():
        r = reported.get(k) if isinstance(reported, dict) else None
        if isinstance(v, dict) and isinstance(r, dict):
            d = delta(v, r)
            if d:
                out[k] = d
        elif r != v:
            out[k] = v
    return out


def snapshot(s):
    return {"state": s["state"], "metadata": s["metadata"], "version": s["version"]}


def publish(client, topic, doc):
    client.publish(topic, json.dumps(doc, separators=(",", ":")), 1)


def handle(client, thing, op, body):
    ts = int(time.time())
    base = f"{PREFIX}{thing}/shadow/{op}"
    try:
        req = json.loads(body) if body.strip() else {}
    except ValueError:
        publish(client, base + "/rejected", {"code": 400, "message": "Invalid JSON", "timestamp": ts})
        return
    token = req.get("clientToken")
    tok = {"clientToken": token} if token is not None else {}
    cur = shadows.get(thing)
    if op == "get":
        if cur is None:
            publish(client, base + "/rejected", {"code": 404, "message": f"No shadow exists with name: '{thing}'", "timestamp": ts, **tok})
            return
        state = json.loads(json.dumps(cur["state"]))
        d = delta(state.get("desired", {}), state.get("reported", {}))
        if d:
            state["delta"] = d
        publish(client, base + "/accepted", {"state": state, "metadata": cur["metadata"], "version": cur["version"], "timestamp": ts, **tok})
        return
    if op == "delete":
        if cur is None:
            publish(client, base + "/rejected", {"code": 404, "message": f"No shadow exists with name: '{thing}'", "timestamp": ts, **tok})
            return
        deleted_version[thing] = cur["version"]
        del shadows[thing]
        say(f"shadow {thing} deleted {{}}")
        publish(client, base + "/accepted", {"version": cur["version"], "timestamp": ts, **tok})
        return
    state = req.get("state")
    if not isinstance(state, dict):
        publish(client, base + "/rejected", {"code": 400, "message": "Missing required node: state", "timestamp": ts, **tok})
        return
    prev = json.loads(json.dumps(cur)) if cur else None
    if cur is None:
        cur = {"state": {}, "metadata": {}, "version": deleted_version.get(thing, 0)}
        shadows[thing] = cur
    for section in ("desired", "reported"):
        if section not in state:
            continue
        if state[section] is None:
            cur["state"].pop(section, None)
            cur["metadata"].pop(section, None)
        else:
            merge(cur["state"].setdefault(section, {}), cur["metadata"].setdefault(section, {}), state[section], ts)
    cur["version"] += 1
    say(f"shadow {thing} {cur['version']} {json.dumps(cur['state'], sort_keys=True, separators=(',', ':'))}")
    publish(client, base + "/accepted", {"state": state, "metadata": meta_of(state, ts), "version": cur["version"], "timestamp": ts, **tok})
    d = delta(cur["state"].get("desired", {}), cur["state"].get("reported", {}))
    if d:
        publish(client, base + "/delta", {"state": d, "version": cur["version"], "timestamp": ts, **tok})
    docs = {"current": snapshot(cur), "timestamp": ts, **tok}
    if prev:
        docs["previous"] = snapshot(prev)
    publish(client, base + "/documents", docs)


def main():
    port, ca, cert, key, console = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
    client = mqtt.Client(client_id="cloud-shadow-service", clean_session=True)
    client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
    ready = threading.Event()

    def on_connect(c, userdata, flags, rc):
        for op in ("update", "get", "delete"):
            c.subscribe(f"{PREFIX}+/shadow/{op}", 1)
        say(f"connected {rc}")
        ready.set()

    def on_message(c, userdata, msg):
        rest = msg.topic[len(PREFIX):]
        thing, _, op = rest.partition("/shadow/")
        body = msg.payload.decode(errors="replace")
        with lock:
            say(f"req {thing} {op} {body}")
            handle(c, thing, op, body)

    client.on_connect = on_connect
    client.on_message = on_message
    client.reconnect_delay_set(min_delay=1, max_delay=1)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    ready.wait(30)
    say("ready")
    seen = 0
    n = 0
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            with open(console) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines[seen:]:
            thing, _, state = line.partition(" ")
            n += 1
            with lock:
                say(f"console {thing} console-{n} {state}")
                handle(client, thing, "update", json.dumps({"state": json.loads(state), "clientToken": f"console-{n}"}))
        seen = len(lines)
        time.sleep(0.05)
    os._exit(0)


if __name__ == "__main__":
    main()
