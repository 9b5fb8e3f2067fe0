"""A Greengrass device written as the guide's Module 4 writes it, for tests/sdk.rs: the AWS IoT
Device SDK for Python (AWSIoTPythonSDK 1.5.4, `AWSIoTMQTTClient` / `AWSIoTMQTTShadowClient`)
talking to sprig's local broker with the group CA as root CA.

Usage: python sdk_device.py COMMAND PORT CA CERT KEY CLIENT_ID [ARGS...]
Every command prints what it observed on stdout, one fact per line; the Rust test decides what
the observations mean. The SDK's own DEBUG log goes to stderr.

Like basicDiscovery.py (the guide's device script): client id = thing name,
configureCredentials(groupCA, key, cert), configureEndpoint(host, port), connect() with the
SDK's defaults (clean session, keep-alive 600 s, MQTT 3.1.1), subscribe(topic, 0, None) with the
messages arriving in onMessage, publish(topic, json, qos). The one change: the SDK's operation
timeout (5 s for a SUBACK/PUBACK) is raised to 60 s so a loaded test machine cannot fail it.
"""
import json
import sys
import threading
import time

import client_main
from AWSIoTPythonSDK.MQTTLib import AWSIoTMQTTClient, AWSIoTMQTTShadowClient

HOST = "127.0.0.1"
PATIENCE = 60.0
# The message of the guide's Module 4 publisher (--message).
MESSAGE = "Hello, World! Sent from HelloWorld_Publisher"


def say(line):
    print(line, flush=True)


def configure(client, port, ca, cert, key):
    client.configureEndpoint(HOST, port)
    client.configureCredentials(ca, key, cert)
    client.configureMQTTOperationTimeout(PATIENCE)


def mqtt_client(port, ca, cert, key, cid):
    c = AWSIoTMQTTClient(cid)
    configure(c, port, ca, cert, key)
    return c


def wait(cond, timeout=PATIENCE):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def cmd_subscriber(port, ca, cert, key, cid, topics, stop):
    """Module 4's subscriber: subscribes to each comma-separated topic and prints every message
    as basicDiscovery.py does, until a payload containing STOP arrived (or PATIENCE passed)."""
    c = mqtt_client(port, ca, cert, key, cid)
    got = []

    def custom_on_message(message):
        payload = message.payload.decode(errors="replace")
        say(f"Received message on topic {message.topic}: {payload}")
        got.append(payload)

    c.onMessage = custom_on_message
    say(f"connect {c.connect()}")
    for t in topics.split(","):
        say(f"subscribe {t} {c.subscribe(t, 0, None)}")
    say("ready")
    wait(lambda: any(stop in p for p in got))
    c.disconnect()
    say(f"count {len(got)}")


def cmd_publisher(port, ca, cert, key, cid, *items):
    """Module 4's publisher: for each QOS:TOPIC item publishes
    {"message": MESSAGE, "sequence": N} (N counting from 0) and prints what publish() returned."""
    c = mqtt_client(port, ca, cert, key, cid)
    say(f"connect {c.connect()}")
    for seq, item in enumerate(items):
        qos, topic = item.split(":", 1)
        payload = json.dumps({"message": MESSAGE, "sequence": seq})
        say(f"publish {topic} qos {qos} sequence {seq} {c.publish(topic, payload, int(qos))}")
    c.disconnect()


def cmd_connect(port, ca, cert, key, cid, timeout):
    """connect() with the SDK's connect timeout set to TIMEOUT seconds: prints whether it
    returned or raised, and (when it returned) what a QoS 1 publish does next."""
    c = mqtt_client(port, ca, cert, key, cid)
    c.configureConnectDisconnectTimeout(float(timeout))
    try:
        say(f"connect returned {c.connect()}")
    except Exception as e:  # the SDK raises its own exception types
        say(f"connect raised {type(e).__name__}")
        return
    try:
        say(f"publish returned {c.publish('hello/world/pubsub', 'after-connect', 1)}")
    except Exception as e:
        say(f"publish raised {type(e).__name__}")


def cmd_suback(port, ca, cert, key, cid, *topics):
    """For each topic: the sync subscribe()'s result, then subscribeAsync()'s SUBACK codes (the
    granted QoS the SDK hands its ackCallback)."""
    c = mqtt_client(port, ca, cert, key, cid)
    say(f"connect {c.connect()}")
    for t in topics:
        say(f"subscribe {t} {c.subscribe(t, 1, None)}")
    for t in topics:
        acks = []
        c.subscribeAsync(t, 1, ackCallback=lambda mid, data: acks.append(data))
        wait(lambda: acks)
        say(f"granted {t} {' '.join(str(g) for g in (acks[0] if acks else ['none']))}")
    c.disconnect()


def cmd_shadow_get(port, ca, cert, key, cid, thing, timeout):
    """AWSIoTMQTTShadowClient: shadowGet on THING's shadow with a TIMEOUT-second request
    timeout (the SDK's own bound); prints the callback's response status and payload."""
    s = AWSIoTMQTTShadowClient(cid)
    configure(s, port, ca, cert, key)
    say(f"connect {s.connect()}")
    handler = s.createShadowHandlerWithName(thing, True)
    done = threading.Event()
    result = {}

    def callback(payload, status, token):
        result.update(payload=payload, status=status, token=token)
        done.set()

    token = handler.shadowGet(callback, int(timeout))
    say(f"token {token}")
    done.wait(float(timeout) + PATIENCE)
    say(f"response {result.get('status', 'none')} {result.get('payload', '')}")
    say(f"same token {result.get('token') == token}")
    s.disconnect()


def dispatch(commands):
    """Runs `commands[argv[1]](PORT, CA, CERT, KEY, CLIENT_ID, *ARGS)` from the command line
    (tests/py/client_main.py prints an exception as an `error ...` line and exits 1)."""
    cmd = sys.argv[1]
    port, ca, cert, key, cid = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
    client_main.run(commands[cmd], port, ca, cert, key, cid, *sys.argv[7:])


def main():
    dispatch(
        {
            "subscriber": cmd_subscriber,
            "publisher": cmd_publisher,
            "connect": cmd_connect,
            "suback": cmd_suback,
            "shadow-get": cmd_shadow_get,
        }
    )


if __name__ == "__main__":
    main()
