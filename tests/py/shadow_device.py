"""Shadow clients for tests/shadow.rs: the guide's Module 5 devices written with the stock AWS
IoT Device SDK for Python (AWSIoTPythonSDK 1.5.4, `AWSIoTMQTTShadowClient`), plus a raw MQTT
client that sends exact request bodies. Talks to sprig's local broker like sdk_device.py
(client id = thing name, the group CA as root CA).

Usage: python shadow_device.py COMMAND PORT CA CERT KEY CLIENT_ID [ARGS...]
Every command prints what it observed, one fact per line; the Rust test judges.
"""
import json
import threading
import time

from AWSIoTPythonSDK.MQTTLib import AWSIoTMQTTShadowClient

from sdk_device import PATIENCE, configure, dispatch, mqtt_client, say, wait


def shadow_handler(port, ca, cert, key, cid, thing):
    s = AWSIoTMQTTShadowClient(cid)
    configure(s, port, ca, cert, key)
    say(f"connect {s.connect()}")
    return s, s.createShadowHandlerWithName(thing, True)


def reported(h):
    """shadowGet: the reported property, or None."""
    got = {}
    done = threading.Event()

    def cb(payload, status, token):
        if status == "accepted":
            got.update(json.loads(payload)["state"].get("reported", {}))
        done.set()

    h.shadowGet(cb, 5)
    done.wait(PATIENCE)
    time.sleep(0.05)
    return got.get("property")


def cmd_switch(port, ca, cert, key, cid, thing, colors):
    """GG_Switch (Module 5's switch.py): for each color, shadowUpdate desired.property and wait
    for the callback (the SDK drops responses whose clientToken it did not send)."""
    s, h = shadow_handler(port, ca, cert, key, cid, thing)
    for color in colors.split(","):
        done = threading.Event()

        def cb(payload, status, token):
            if status == "accepted":
                p = json.loads(payload)
                say(f"update {status} property {p['state']['desired']['property']} version {p['version']}")
            else:
                say(f"update {status} {payload}")
            done.set()

        h.shadowUpdate(json.dumps({"state": {"desired": {"property": color}}}), cb, 5)
        if not done.wait(PATIENCE):
            say("update timeout")
        # The guide's switch waits 20 s for the light; this one asks the shadow (shadowGet)
        # until the light reported the color, so the order of events is fixed.
        wait(lambda: reported(h) == color)
    s.disconnect()


def cmd_light(port, ca, cert, key, cid, thing, count):
    """GG_TrafficLight (trafficLight.py): on each delta, print it and report the new property;
    stops after COUNT reports were accepted."""
    s, h = shadow_handler(port, ca, cert, key, cid, thing)
    accepted = []

    def on_reported(payload, status, token):
        if status == "accepted":
            p = json.loads(payload)
            say(f"reported {p['state']['reported']['property']} version {p['version']}")
            accepted.append(p)
        else:
            say(f"report {status} {payload}")

    def on_delta(payload, status, token):
        p = json.loads(payload)
        prop = p["state"].get("property")
        say(f"delta property {prop} version {p['version']} token {p.get('clientToken', '-')}")
        if prop is not None:
            h.shadowUpdate(json.dumps({"state": {"reported": {"property": prop}}}), on_reported, 5)

    h.shadowRegisterDeltaCallback(on_delta)
    say("ready")
    wait(lambda: len(accepted) >= int(count))
    s.disconnect()


def cmd_listen(port, ca, cert, key, cid, topics, count):
    """A plain device subscribed to each comma-separated topic; prints every message until COUNT
    arrived (or PATIENCE passed)."""
    c = mqtt_client(port, ca, cert, key, cid)
    got = []

    def on_message(client, userdata, message):
        say(f"msg {message.topic} {message.payload.decode(errors='replace')}")
        got.append(message)

    say(f"connect {c.connect()}")
    for t in topics.split(","):
        c.subscribe(t, 0, on_message)
    say("ready")
    wait(lambda: len(got) >= int(count))
    c.disconnect()


def cmd_raw(port, ca, cert, key, cid, thing, requests_file, gap):
    """Sends each request of REQUESTS_FILE (a JSON list of [op, body-string]) to THING's shadow
    and prints every reply on `<op>/accepted|rejected` as `reply SUFFIX BODY`. GAP < 0: wait for
    each reply before the next request; GAP >= 0: a burst, GAP seconds apart, not waiting."""
    c = mqtt_client(port, ca, cert, key, cid)
    base = f"$aws/things/{thing}/shadow/"
    replies = []
    lock = threading.Lock()

    def on_message(client, userdata, message):
        suffix = message.topic[len(base):]
        if suffix.endswith("/accepted") or suffix.endswith("/rejected"):
            with lock:
                say(f"reply {suffix} {message.payload.decode(errors='replace')}")
                replies.append(suffix)
        else:
            say(f"side {suffix} {message.payload.decode(errors='replace')}")

    say(f"connect {c.connect()}")
    c.subscribe(base + "#", 0, on_message)
    time.sleep(0.2)
    with open(requests_file) as f:
        reqs = json.load(f)
    gap = float(gap)
    for i, (op, body) in enumerate(reqs):
        try:
            c.publish(base + op, body, 0)
        except Exception as e:  # the core went away mid-burst (the kill -9 test)
            say(f"publish {i} raised {type(e).__name__}")
        if gap < 0:
            if not wait(lambda: len(replies) > i):
                say(f"no reply to request {i}")
                break
        else:
            time.sleep(gap)
    wait(lambda: len(replies) >= len(reqs), 5 if gap >= 0 else PATIENCE)
    say(f"done {len(replies)}")
    try:
        c.disconnect()
    except Exception as e:
        say(f"disconnect raised {type(e).__name__}")


if __name__ == "__main__":
    dispatch({"switch": cmd_switch, "light": cmd_light, "listen": cmd_listen, "raw": cmd_raw})
