"""Stream manager scenarios with the stock client (PyPI greengrasssdk 1.6.1, StreamManagerClient),
driven by tests/streams.rs against the real sprig binary. The port comes from
STREAM_MANAGER_SERVER_PORT, as in a Lambda's environment; each scenario prints one JSON line per
observation and asserts nothing itself (tests/streams.rs does).

usage: stream_client.py SCENARIO [ARGS...]
"""

import base64
import http.server
import json
import os
import socket
import struct
import sys
import threading
import time

import cbor2
from greengrasssdk.stream_manager import (
    ExportDefinition,
    HTTPConfig,
    KinesisConfig,
    MessageStreamDefinition,
    Persistence,
    ReadMessagesOptions,
    StrategyOnFull,
    StreamManagerClient,
)
from greengrasssdk.stream_manager.data import ExportFormat


def out(**kw):
    print(json.dumps(kw), flush=True)


def err_name(f):
    try:
        f()
        return None
    except Exception as e:  # the exception class is the observation
        return type(e).__name__


def stream(name, **kw):
    kw.setdefault("strategy_on_full", StrategyOnFull.RejectNewData)
    return MessageStreamDefinition(name=name, **kw)


def basic():
    c = StreamManagerClient()
    c.create_message_stream(stream("s1", persistence=Persistence.File))
    out(create_again=err_name(lambda: c.create_message_stream(stream("s1"))))
    seqs = [c.append_message("s1", b"m%d" % i) for i in range(10000)]
    out(seqs_ok=seqs == list(range(10000)))
    ok = True
    for start, n in [(0, 100), (5000, 250), (9990, 10)]:
        msgs = c.read_messages("s1", ReadMessagesOptions(desired_start_sequence_number=start,
                                                        min_message_count=n, max_message_count=n))
        ok &= [m.sequence_number for m in msgs] == list(range(start, start + n))
        ok &= all(m.payload == b"m%d" % m.sequence_number and m.stream_name == "s1" for m in msgs)
    out(ranges_ok=ok)
    out(default_read=[m.payload.decode() for m in c.read_messages("s1")])
    out(not_enough=err_name(lambda: c.read_messages(
        "s1", ReadMessagesOptions(desired_start_sequence_number=10000, min_message_count=1))))
    # A long-poll read parks; meanwhile the same client (same connection, pipelined) lists,
    # describes and appends to another stream; then an append to s1 wakes the read.
    c.create_message_stream(stream("s2", persistence=Persistence.Memory))
    got = {}

    def reader():
        t0 = time.time()
        got["msgs"] = c.read_messages("s1", ReadMessagesOptions(
            desired_start_sequence_number=10000, min_message_count=2, max_message_count=5,
            read_timeout_millis=30000))
        got["waited"] = time.time() - t0

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.3)
    out(while_parked_list=sorted(c.list_streams()), while_parked_append=c.append_message("s2", b"x"),
        reader_still_waiting=t.is_alive())
    c.append_message("s1", b"late1")
    c.append_message("s1", b"late2")
    t.join(10)
    out(long_poll=[m.payload.decode() for m in got.get("msgs", [])])
    info = c.describe_message_stream("s1")
    out(describe=dict(oldest=info.storage_status.oldest_sequence_number,
                      newest=info.storage_status.newest_sequence_number,
                      bytes=info.storage_status.total_bytes,
                      persistence=info.definition.persistence.name,
                      strategy=info.definition.strategy_on_full.name))
    d = stream("s1", persistence=Persistence.File, max_size=1 << 20)
    c.update_message_stream(d)
    out(updated_max=c.describe_message_stream("s1").definition.max_size)
    out(update_persistence=err_name(lambda: c.update_message_stream(stream("s1", persistence=Persistence.Memory))))
    c.delete_message_stream("s1")
    out(after_delete=c.list_streams(),
        describe_deleted=err_name(lambda: c.describe_message_stream("s1")),
        delete_missing=err_name(lambda: c.delete_message_stream("nope")),
        append_missing=err_name(lambda: c.append_message("nope", b"x")))
    # Kinesis is recognised and accepted; its status says it is not supported.
    c.create_message_stream(stream("k", export_definition=ExportDefinition(
        kinesis=[KinesisConfig(identifier="KinesisExport", kinesis_stream_name="MyKinesisStream")])))
    st = c.describe_message_stream("k").export_statuses
    out(kinesis_status=[(s.export_config_identifier, s.error_message) for s in st])
    c.close()


def bounds(kind):
    """kind: reject | overwrite | store (the global bound; config sets it to 64 KiB)."""
    c = StreamManagerClient()
    if kind == "store":
        c.create_message_stream(stream("big", max_size=1 << 24))
        n, e = 0, None
        while e is None and n < 10000:
            try:
                c.append_message("big", b"y" * 1000)
                n += 1
            except Exception as x:
                e = type(x).__name__
        out(appended=n, error=e)
        return
    strat = StrategyOnFull.RejectNewData if kind == "reject" else StrategyOnFull.OverwriteOldestData
    c.create_message_stream(stream(kind, max_size=4096, stream_segment_size=1024, strategy_on_full=strat))
    n, e = 0, None
    while e is None and n < 100:
        try:
            c.append_message(kind, b"z" * 100)
            n += 1
        except Exception as x:
            e = type(x).__name__
    s = c.describe_message_stream(kind).storage_status
    out(appended=n, error=e, oldest=s.oldest_sequence_number, newest=s.newest_sequence_number,
        bytes=s.total_bytes)


def crash_append():
    """Appends to a flushOnWrite stream until killed, printing every acknowledged number."""
    c = StreamManagerClient()
    c.create_message_stream(stream("d", flush_on_write=True, stream_segment_size=4096))
    i = 0
    while True:
        seq = c.append_message("d", b"p%d" % i)
        out(acked=seq)
        i += 1


def crash_check():
    c = StreamManagerClient()
    info = c.describe_message_stream("d").storage_status
    msgs = c.read_messages("d", ReadMessagesOptions(min_message_count=1,
                                                   max_message_count=1 << 20))
    good = all(m.payload == b"p%d" % m.sequence_number for m in msgs)
    out(count=len(msgs), contiguous=[m.sequence_number for m in msgs] == list(range(len(msgs))),
        payloads_ok=good, newest=info.newest_sequence_number,
        next=c.append_message("d", b"after"))


def connect_refused():
    out(refused=err_name(lambda: StreamManagerClient(connect_timeout=3, request_timeout=5)))


def garbage(port):
    """A second client works while raw sockets send garbage."""
    c = StreamManagerClient()
    c.create_message_stream(stream("g", persistence=Persistence.Memory))
    closed = []
    for bad in [b"\x07", b"\x01" + struct.pack(">i", -5), b"\x01" + struct.pack(">i", 1 << 30) + b"\x01",
                b"\x01" + struct.pack(">i", 4) + b"\x01\xff\xff\xff",
                b"\x01" + struct.pack(">iB", 3, 2) + b"\xa0\x00"]:
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(bad)
        s.settimeout(5)
        try:
            data = s.recv(100)
            while data:
                data = s.recv(100)
            closed.append(True)
        except socket.timeout:
            closed.append(False)
        s.close()
        c.append_message("g", b"still")
    # After a good handshake, a request with a requestId but a bad body gets an error reply.
    s = socket.create_connection(("127.0.0.1", port))
    req = cbor2.dumps({"requestId": "r1", "protocolVersion": "1.1.0"})
    s.sendall(b"\x01" + struct.pack(">iB", len(req) + 1, 1) + req)
    bad = cbor2.dumps({"requestId": "r2", "name": 7})
    s.sendall(struct.pack(">iB", len(bad) + 1, 4) + bad)
    s.settimeout(5)
    buf = b""
    while buf.count(b"requestId") < 2:
        buf += s.recv(4096)
    s.close()
    out(closed=closed, bad_request_answered=b"r2" in buf,
        count=len(c.read_messages("g", ReadMessagesOptions(max_message_count=100))))


def wait_file(path):
    while not os.path.exists(path):
        time.sleep(0.05)


def export(port, n, fmt, flag):
    """HTTP export through an outage and a sprig restart: the first half is exported, the
    endpoint goes down, the second half is appended, sprig is killed (-9) and restarted by the
    test, the endpoint comes back. Every message must arrive once, in order."""
    port, n, half = int(port), int(n), int(n) // 2
    received = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if fmt == "json":
                received.extend(base64.b64decode(m["payload"]) for m in json.loads(body))
            else:
                received.append(body)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    def serve():
        # Port 0 the first time (the kernel picks a free one), the same port after the outage.
        nonlocal port
        srv = http.server.HTTPServer(("127.0.0.1", port), H)
        port = srv.server_address[1]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return srv

    def last():
        return c.describe_message_stream("e").export_statuses[0]

    def wait_last(want):
        deadline = time.time() + 60
        while time.time() < deadline and last().last_exported_sequence_number != want:
            time.sleep(0.1)
        return last()

    c = StreamManagerClient()
    srv = serve()
    c.create_message_stream(stream("e", export_definition=ExportDefinition(http=[
        HTTPConfig(identifier="web", uri="http://127.0.0.1:%d/in" % port, batch_size=10,
                   export_format=ExportFormat.JSON_BATCHED if fmt == "json" else ExportFormat.RAW_NOT_BATCHED)])))
    for i in range(half):
        c.append_message("e", b"e%d" % i)
    out(before_outage=wait_last(half - 1).last_exported_sequence_number)
    srv.shutdown()
    srv.server_close()
    for i in range(half, n):
        c.append_message("e", b"e%d" % i)
    time.sleep(1.0)
    st = last()
    out(outage_error=st.error_message is not None, outage_last=st.last_exported_sequence_number)
    print("RESTART", flush=True)
    wait_file(flag)
    srv = serve()
    st = wait_last(n - 1)
    time.sleep(0.5)
    out(last=st.last_exported_sequence_number, error=st.error_message,
        received_ok=received == [b"e%d" % i for i in range(n)], received=len(received))


def export_https(port, cert, key, n):
    """HTTPS export to a local TLS endpoint (its certificate from the test's CA)."""
    import ssl
    port, n = int(port), int(n)
    received = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", port), H)
    port = srv.server_address[1]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    c = StreamManagerClient()
    c.create_message_stream(stream("tls", export_definition=ExportDefinition(http=[
        HTTPConfig(identifier="secure", uri="https://127.0.0.1:%d/in" % port)])))
    for i in range(n):
        c.append_message("tls", b"t%d" % i)
    deadline = time.time() + 30
    while time.time() < deadline:
        st = c.describe_message_stream("tls").export_statuses[0]
        if st.last_exported_sequence_number == n - 1:
            break
        time.sleep(0.1)
    out(last=st.last_exported_sequence_number, error=st.error_message,
        received_ok=received == [b"t%d" % i for i in range(n)])


def churn(mb, flag):
    """`mb` MiB through a 1 MiB OverwriteOldestData stream in 64 KiB messages."""
    c = StreamManagerClient()
    c.create_message_stream(stream("churn", max_size=1 << 20, stream_segment_size=256 << 10,
                                   strategy_on_full=StrategyOnFull.OverwriteOldestData))
    blob = b"q" * (64 << 10)
    for i in range(int(mb) * 16):
        c.append_message("churn", blob)
        if i % 16 == 15:
            out(mib=(i + 1) // 16)
    s = c.describe_message_stream("churn").storage_status
    out(done=True, bytes=s.total_bytes, oldest=s.oldest_sequence_number)
    wait_file(flag)


def bench(port, n_client, n_raw):
    """Appends through the server: the stock client one at a time, then raw pipelined frames
    (all written, replies read by a second thread). Prints wall seconds per phase; the script
    reads sprig's CPU around each phase (it waits for a line on stdin between phases)."""
    n_client, n_raw, port = int(n_client), int(n_raw), int(port)
    blob = b"b" * 256
    c = StreamManagerClient()
    c.create_message_stream(stream("bench", persistence=Persistence.File, max_size=1 << 30,
                                   stream_segment_size=1 << 20))
    sys.stdin.readline()
    t0 = time.time()
    for _ in range(n_client):
        c.append_message("bench", blob)
    out(phase="client", n=n_client, secs=time.time() - t0)
    sys.stdin.readline()
    s = socket.create_connection(("127.0.0.1", port))
    req = cbor2.dumps({"requestId": "c", "protocolVersion": "1.1.0"})
    s.sendall(b"\x01" + struct.pack(">iB", len(req) + 1, 1) + req)
    hdr = s.recv(1)
    ln = struct.unpack(">i", s.recv(4))[0]
    while ln > 0:
        ln -= len(s.recv(ln))
    frames = []
    for i in range(n_raw):
        p = cbor2.dumps({"requestId": "a%d" % i, "name": "bench", "payload": blob})
        frames.append(struct.pack(">iB", len(p) + 1, 4) + p)
    data = b"".join(frames)
    got = [0]

    def reader():
        buf = b""
        while got[0] < n_raw:
            buf += s.recv(1 << 16)
            while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">i", buf[:4])[0]:
                buf = buf[4 + struct.unpack(">i", buf[:4])[0]:]
                got[0] += 1

    t = threading.Thread(target=reader)
    t0 = time.time()
    t.start()
    s.sendall(data)
    t.join()
    out(phase="pipelined", n=n_raw, secs=time.time() - t0, header=hdr.hex())


if __name__ == "__main__":
    {"basic": basic, "bounds": bounds, "crash_append": crash_append, "crash_check": crash_check,
     "connect_refused": connect_refused, "garbage": lambda p: garbage(int(p)), "export": export,
     "churn": churn, "bench": bench, "export_https": export_https}[sys.argv[1]](*sys.argv[2:])
