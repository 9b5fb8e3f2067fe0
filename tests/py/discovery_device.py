"""A Greengrass device that finds its core through the Discovery API, as the guide's Module 4
script basicDiscovery.py does, for tests/discovery.rs: the stock AWSIoTPythonSDK 1.5.4
`DiscoveryInfoProvider` → `DiscoveryInfo` → `AWSIoTMQTTClient` against sprig.

Usage: python discovery_device.py COMMAND HOST PORT CA CERT KEY THING [ARGS...]
  discover                    discover THING, print what DiscoveryInfo holds (or the refusal)
  basic MODE TOPIC [STOP]     basicDiscovery.py: discover, write the group CA to a file named
                              after the group id, connect to each connectivity entry in turn
                              until one works; MODE subscribe (print messages until one contains
                              STOP) or publish (4 messages, the last one containing "STOP")
  raw HEX [ALPN]              send these bytes over TLS with the certificate (no SNI, as the SDK);
                              print the selected ALPN protocol and the reply's status line
  plain HEX                   the same over plain TCP
  nocert                      a TLS handshake without a client certificate
Every command prints what it observed on stdout, one fact per line; the Rust test decides what
the observations mean. The SDK's DEBUG log goes to stderr.
"""
import json
import os
import socket
import ssl
import sys
import time
import uuid

import client_main
from AWSIoTPythonSDK.core.greengrass.discovery.providers import DiscoveryInfoProvider
from AWSIoTPythonSDK.MQTTLib import AWSIoTMQTTClient

PATIENCE = 60.0
MESSAGE = "Hello, World! Sent from HelloWorld_Publisher"


def say(line):
    print(line, flush=True)


def provider(host, port, ca, cert, key):
    p = DiscoveryInfoProvider()
    p.configureEndpoint(host, port)
    p.configureCredentials(ca, cert, key)
    p.configureTimeout(10)
    return p


def discover(host, port, ca, cert, key, thing):
    """Returns DiscoveryInfo, or None after printing the refusal."""
    try:
        info = provider(host, port, ca, cert, key).discover(thing)
    except Exception as e:  # the SDK raises its own exception types
        say(f"refused {type(e).__name__} {e}")
        return None
    for group_id, ca_pem in info.getAllCas():
        say(f"ca {group_id} {json.dumps(ca_pem)}")
    for core in info.getAllCores():
        say(f"core {core.groupId} {core.coreThingArn}")
        for c in core.connectivityInfoList:
            say(f"connectivity {c.id} {c.host} {c.port} {type(c.port).__name__} {c.metadata!r}")
    return info


def cmd_discover(host, port, ca, cert, key, thing):
    discover(host, port, ca, cert, key, thing)


def cmd_basic(host, port, ca, cert, key, thing, mode, topic, stop="STOP"):
    info = discover(host, port, ca, cert, key, thing)
    if info is None:
        return
    # basicDiscovery.py: the first group's first CA, written to a file named after the group.
    group_id, ca_pem = info.getAllCas()[0]
    ca_dir = os.path.join(os.path.dirname(cert), "groupCA")
    os.makedirs(ca_dir, exist_ok=True)
    group_ca = os.path.join(ca_dir, f"{group_id}_CA_{uuid.uuid4()}.crt")
    with open(group_ca, "w") as f:
        f.write(ca_pem)
    client = AWSIoTMQTTClient(thing)
    client.configureCredentials(group_ca, key, cert)
    client.configureMQTTOperationTimeout(PATIENCE)
    got = []

    def on_message(message):
        payload = message.payload.decode(errors="replace")
        say(f"Received message on topic {message.topic}: {payload}")
        got.append(payload)

    client.onMessage = on_message
    connected = False
    for core in info.getAllCores():
        for c in core.connectivityInfoList:
            client.configureEndpoint(c.host, c.port)
            try:
                client.connect()
                connected = True
                say(f"connected {c.host}:{c.port}")
                break
            except Exception as e:
                say(f"connect to {c.host}:{c.port} failed {type(e).__name__}")
        if connected:
            break
    if not connected:
        say("error: cannot reach the core at any of its addresses")
        return
    if mode == "subscribe":
        say(f"subscribe {topic} {client.subscribe(topic, 0, None)}")
        say("ready")
        end = time.time() + PATIENCE
        while time.time() < end and not any(stop in p for p in got):
            time.sleep(0.02)
        say(f"count {len(got)}")
    else:
        for seq in range(4):
            text = MESSAGE if seq < 3 else f"{MESSAGE} {stop}"
            payload = json.dumps({"message": text, "sequence": seq})
            say(f"publish {seq} {client.publish(topic, payload, 1)}")
    client.disconnect()


def read_all(sock):
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ssl.SSLError, OSError) as e:
        say(f"read ended {type(e).__name__}")
    return data


def report(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    say(f"status {lines[0]}")
    say(f"body {body.decode(errors='replace')}")


def cmd_raw(host, port, ca, cert, key, thing, hexdata, alpn=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    if alpn:
        ctx.set_alpn_protocols([alpn])
    with socket.create_connection((host, port)) as raw:
        with ctx.wrap_socket(raw) as s:
            say(f"alpn {s.selected_alpn_protocol()}")
            s.sendall(bytes.fromhex(hexdata))
            report(read_all(s))


def cmd_plain(host, port, ca, cert, key, thing, hexdata):
    with socket.create_connection((host, port)) as s:
        s.sendall(bytes.fromhex(hexdata))
        report(read_all(s))


def cmd_nocert(host, port, ca, cert, key, thing):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(ca)
    try:
        with socket.create_connection((host, port)) as raw:
            with ctx.wrap_socket(raw) as s:
                s.sendall(b"GET /greengrass/discover/thing/" + thing.encode() + b" HTTP/1.1\r\n\r\n")
                data = read_all(s)
                say(f"got {len(data)} bytes")
    except (ssl.SSLError, OSError) as e:
        say(f"handshake refused {type(e).__name__}")


def main():
    cmd = sys.argv[1]
    host, port = sys.argv[2], int(sys.argv[3])
    ca, cert, key, thing = sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
    command = {
        "discover": cmd_discover,
        "basic": cmd_basic,
        "raw": cmd_raw,
        "plain": cmd_plain,
        "nocert": cmd_nocert,
    }[cmd]
    client_main.run(command, host, port, ca, cert, key, thing, *sys.argv[8:])


if __name__ == "__main__":
    main()
