"""Real MQTT clients for tests/broker.rs (paho-mqtt 1.6.1 and raw TLS sockets).

Usage: python broker_clients.py COMMAND PORT CA CERT KEY CLIENT_ID [ARGS...]
Every command prints what it observed on stdout, one fact per line, and exits 0 unless the
setup itself failed. The Rust test decides what the observations mean.
"""
import socket
import ssl
import sys
import threading
import time

import paho.mqtt.client as mqtt

PATIENCE = 60.0


def tls_context(ca, cert, key):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    return ctx


def client(port, ca, cert, key, cid, keepalive=60):
    c = mqtt.Client(client_id=cid, clean_session=True, protocol=mqtt.MQTTv311)
    c.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
    rc = {}
    c.on_connect = lambda cl, ud, flags, code: rc.setdefault("rc", code)
    # A refused client is closed without a CONNACK.
    c.on_disconnect = lambda cl, ud, code: rc.setdefault("rc", "closed")
    c.connect("127.0.0.1", port, keepalive)
    return c, rc


def wait(cond, timeout=PATIENCE, step=None):
    end = time.time() + timeout
    while time.time() < end:
        if step:
            step()
        if cond():
            return True
        if not step:
            time.sleep(0.01)
    return cond()


def cmd_churn(port, ca, cert, key, cid, n, bad_cert=None, bad_key=None):
    """n connect/CONNACK/disconnect cycles; every 10th with bad_cert (expected refused)."""
    ok = refused = 0
    for i in range(int(n)):
        use_bad = bad_cert and i % 10 == 9
        c, rc = client(port, ca, bad_cert if use_bad else cert, bad_key if use_bad else key, cid)
        wait(lambda: "rc" in rc, step=lambda: c.loop(0.05))
        if rc.get("rc") == 0:
            ok += 1
            c.disconnect()
            c.loop(0.01)
        else:
            refused += 1
            if not use_bad:
                print(f"cycle {i}: good certificate, CONNACK {rc.get('rc')} at {time.time():.3f}")
        c.socket() and c.socket().close()
    print(f"ok {ok}")
    print(f"refused {refused}")


def cmd_publish(port, ca, cert, key, cid, topic, count, size, qos, inflight="20", tag="m"):
    """Publishes `count` messages of `size` bytes; payload starts with TAG-<i>-."""
    c, rc = client(port, ca, cert, key, cid)
    c.max_inflight_messages_set(int(inflight))
    c.loop_start()
    wait(lambda: "rc" in rc)
    print(f"connack {rc.get('rc')}")
    infos = []
    for i in range(int(count)):
        head = f"{tag}-{i}-".encode()
        payload = head + b"x" * max(0, int(size) - len(head))
        infos.append(c.publish(topic, payload, qos=int(qos)))
    for info in infos:
        if int(qos) > 0:
            info.wait_for_publish(PATIENCE)
    time.sleep(0.2)
    print(f"published {sum(1 for i in infos if i.is_published())}")
    c.disconnect()
    c.loop_stop()


def cmd_acked(port, ca, cert, key, cid, topic, count, inflight):
    """Publishes `count` QoS 1 messages `CID-<i>` with up to `inflight` unacknowledged, waits
    for the PUBACKs, then prints `acked I,J,...` (the indices the broker acknowledged) and
    `published N`."""
    c, rc = client(port, ca, cert, key, cid)
    c.max_inflight_messages_set(int(inflight))
    c.max_queued_messages_set(0)
    c.loop_start()
    wait(lambda: "rc" in rc)
    print(f"connack {rc.get('rc')}", flush=True)
    infos = [c.publish(topic, f"{cid}-{i}".encode(), qos=1) for i in range(int(count))]
    end = time.time() + PATIENCE
    for info in infos:
        info.wait_for_publish(max(0.1, end - time.time()))
    acked = [str(i) for i, info in enumerate(infos) if info.is_published()]
    print("acked " + ",".join(acked))
    print(f"published {len(acked)}")
    c.disconnect()
    c.loop_stop()


def cmd_subscribe(port, ca, cert, key, cid, filters, expect, stop_after):
    """Subscribes to comma-separated filters, prints the SUBACK codes, then prints every
    received message as `msg TOPIC PAYLOAD_PREFIX LEN` until `expect` arrived or a message
    whose payload starts with `stop_after`, or PATIENCE passes."""
    c, rc = client(port, ca, cert, key, cid)
    got = []
    codes = {}
    c.on_subscribe = lambda cl, ud, mid, granted: codes.setdefault("g", granted)
    c.on_message = lambda cl, ud, m: got.append((m.topic, m.payload))
    c.loop_start()
    wait(lambda: "rc" in rc)
    print(f"connack {rc.get('rc')}", flush=True)
    c.subscribe([(f, 0) for f in filters.split(",")])
    wait(lambda: "g" in codes)
    print("suback " + " ".join(str(g) for g in codes.get("g", [])), flush=True)
    print("ready", flush=True)
    wait(lambda: len(got) >= int(expect) or any(p.startswith(stop_after.encode()) for _, p in got))
    c.disconnect()
    c.loop_stop()
    for t, p in got:
        print(f"msg {t} {p[:24].split(b'x')[0].decode(errors='replace')} {len(p)}")
    print(f"count {len(got)}")


def cmd_lockstep(port, ca, cert, key, cid, sub_cert, sub_key, sub_cid, sub_filter, topic, count, size):
    """Publishes `count` messages of `size` bytes at QoS 1 as CID and waits, after each, until
    the subscriber SUB_CID (same process, subscribed to SUB_FILTER first) has received
    it. The subscriber never falls behind by more than one message, however slow the machine:
    a loss can only be the broker's doing. Prints `received N` and `published N`."""
    sub, sub_rc = client(port, ca, sub_cert, sub_key, sub_cid)
    got = []
    codes = {}
    arrived = threading.Condition()

    def on_message(cl, ud, m):
        with arrived:
            got.append(m.payload[:24])
            arrived.notify()

    sub.on_subscribe = lambda cl, ud, mid, granted: codes.setdefault("g", granted)
    sub.on_message = on_message
    sub.loop_start()
    wait(lambda: "rc" in sub_rc)
    sub.subscribe(sub_filter, 0)
    wait(lambda: "g" in codes)
    pub, pub_rc = client(port, ca, cert, key, cid)
    pub.loop_start()
    wait(lambda: "rc" in pub_rc)
    print(f"connack {pub_rc.get('rc')} {sub_rc.get('rc')}", flush=True)
    published = 0
    for i in range(int(count)):
        head = f"ls-{i}-".encode()
        info = pub.publish(topic, head + b"x" * max(0, int(size) - len(head)), qos=1)
        info.wait_for_publish(PATIENCE)
        published += info.is_published()
        # A lost message shows up as a timeout here; stop waiting for the rest then.
        with arrived:
            if not arrived.wait_for(lambda: any(p.startswith(head) for p in got[-4:]), PATIENCE):
                break
    print(f"published {published}")
    print(f"received {len(got)}")
    pub.disconnect()
    sub.disconnect()
    pub.loop_stop()
    sub.loop_stop()


def cmd_stall(port, ca, cert, key, cid, filters, seconds):
    """Subscribes, then stops reading its socket for `seconds` (a stalled subscriber)."""
    c, rc = client(port, ca, cert, key, cid)
    codes = {}
    c.on_subscribe = lambda cl, ud, mid, granted: codes.setdefault("g", granted)
    wait(lambda: "rc" in rc, step=lambda: c.loop(0.05))
    c.subscribe([(f, 0) for f in filters.split(",")])
    wait(lambda: "g" in codes, step=lambda: c.loop(0.05))
    print("suback " + " ".join(str(g) for g in codes.get("g", [])), flush=True)
    print("ready", flush=True)
    # Shrink our receive buffer is not possible after connect; simply never read again.
    time.sleep(float(seconds))


def raw_tls(port, ca, cert, key):
    ctx = tls_context(ca, cert, key)
    s = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
    return ctx.wrap_socket(s, server_hostname="localhost")


def connect_packet(cid, keepalive):
    """MQTT 3.1.1 CONNECT, clean session (client ids here are under 100 bytes)."""
    cid_b = cid.encode()
    return bytes([0x10, 12 + len(cid_b), 0, 4]) + b"MQTT" + bytes([4, 2, 0, keepalive, 0, len(cid_b)]) + cid_b


def publish_packet(topic, payload):
    """QoS 0 PUBLISH."""
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t + payload
    n, rl = len(body), b""
    while True:
        n, digit = n >> 7, n & 0x7F
        rl += bytes([digit | (0x80 if n else 0)])
        if not n:
            break
    return b"\x30" + rl + body


def cmd_burst(port, ca, cert, key, cid, topic, count, size, tag):
    """Sends `count` QoS 0 PUBLISHes of `size` bytes in one write after the CONNACK, so the
    server decrypts hundreds of complete packets per TLS record: far more than a tiny work queue
    holds, whatever the machine's load. Payload starts with TAG-<i>-."""
    t = raw_tls(port, ca, cert, key)
    t.sendall(connect_packet(cid, 60))
    connack = b""
    while len(connack) < 4:
        chunk = t.recv(4 - len(connack))
        if not chunk:
            break
        connack += chunk
    print(f"connack {connack[3] if len(connack) == 4 else 'none'}", flush=True)
    frames = []
    for i in range(int(count)):
        head = f"{tag}-{i}-".encode()
        frames.append(publish_packet(topic, head + b"x" * max(0, int(size) - len(head))))
    t.sendall(b"".join(frames) + b"\xe0\x00")  # ... then DISCONNECT
    print(f"sent {count}", flush=True)
    try:
        while t.recv(4096):
            pass
    except (ssl.SSLError, OSError):
        pass


def cmd_raw(port, ca, cert, key, cid, mode):
    """Raw TLS abuse: garbage after the handshake, a truncated packet, or silence."""
    t = raw_tls(port, ca, cert, key)
    connect = connect_packet(cid, 2 if mode == "keepalive" else 60)
    if mode == "garbage":
        t.sendall(b"\xff\xff\xff\xff\xff\x00garbage" * 50)
    elif mode == "garbage-after-connect":
        t.sendall(connect)
        t.sendall(b"\xf0\x00" + b"\x00" * 64)
    elif mode == "bad-remaining-length":
        t.sendall(connect)
        t.sendall(b"\x30\xff\xff\xff\xff\x01")
    elif mode == "truncated":
        t.sendall(connect)
        # PUBLISH announcing 100 bytes, carrying 10, then the client goes away.
        t.sendall(b"\x30\x64\x00\x05abcde12345")
        t.close()
        print("closed")
        return
    elif mode == "silent":
        pass  # no CONNECT: the server gives up after its CONNECT timeout
    elif mode == "keepalive":
        t.sendall(connect)  # keep-alive 2 s, then silence: closed after 1.5 x 2 s
    # Wait for the server to close on us.
    start = time.time()
    try:
        while True:
            if not t.recv(4096):
                break
    except (ssl.SSLError, OSError) as e:
        print(f"error {type(e).__name__}")
    print(f"server closed after {time.time() - start:.1f}")


def cmd_coalesced(port, ca, cert, key, cid):
    """TLS 1.3 handshake through memory BIOs, then the client's last handshake flight and its
    CONNECT in one send (as a fast client's packets can arrive): prints the CONNACK code."""
    ctx = tls_context(ca, cert, key)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
    s = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            s.sendall(out.read())
            data = s.recv(65536)
            if not data:
                print("closed during handshake")
                return
            inc.write(data)
    tls.write(connect_packet(cid, 60))
    s.sendall(out.read())  # Certificate, CertificateVerify, Finished and CONNECT together
    end = time.time() + PATIENCE
    while time.time() < end:
        try:
            got = tls.read(4)
            if got[:1] == b"\x20":
                print(f"connack {got[3]}")
                return
        except ssl.SSLWantReadError:
            data = s.recv(65536)
            if not data:
                break
            inc.write(data)
        except ssl.SSLError:
            break
    print("no connack")


def main():
    cmd = sys.argv[1]
    port, ca, cert, key, cid = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
    rest = sys.argv[7:]
    {
        "churn": cmd_churn,
        "publish": cmd_publish,
        "acked": cmd_acked,
        "subscribe": cmd_subscribe,
        "stall": cmd_stall,
        "raw": cmd_raw,
        "burst": cmd_burst,
        "lockstep": cmd_lockstep,
        "coalesced": cmd_coalesced,
    }[cmd](port, ca, cert, key, cid, *rest)


if __name__ == "__main__":
    main()
