"""Benchmark client for the Lambda path (tests/lambda.rs `bench_lambda_round_trips`, ignored in
normal runs). One paho device connection over TLS that publishes on PREFIX/... and receives
the echo; prints `key value` lines.

Usage: python bench_lambda_client.py PORT CA CERT KEY CLIENT_ID PUB_TOPIC SUB_FILTER N WINDOW
- sequential: N round trips one at a time -> p50_us, p99_us
- windowed: N messages with at most WINDOW in flight -> per_s (round trips per second)
"""
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt


def main():
    port, ca, cert, key, cid, pub, sub, n, window = sys.argv[1:10]
    port, n, window = int(port), int(n), int(window)
    c = mqtt.Client(client_id=cid, clean_session=True, protocol=mqtt.MQTTv311)
    c.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
    got = {}
    cond = threading.Condition()
    ready = threading.Event()

    def on_message(cl, ud, msg):
        i = json.loads(msg.payload)['i']
        with cond:
            got[i] = time.perf_counter()
            cond.notify_all()

    c.on_message = on_message
    c.on_subscribe = lambda *a: ready.set()
    c.on_connect = lambda cl, ud, fl, rc: cl.subscribe(sub, 0)
    c.connect('127.0.0.1', port, 60)
    c.loop_start()
    if not ready.wait(30):
        sys.exit('no SUBACK')

    def send(i):
        c.publish(pub, json.dumps({'i': i}), qos=0)
        return time.perf_counter()

    # Warm-up (the worker is pinned and already up; this primes caches and connections).
    for i in range(-20, 0):
        send(i)
        with cond:
            cond.wait_for(lambda: i in got, 10)
    lat = []
    for i in range(n):
        t0 = send(i)
        with cond:
            if not cond.wait_for(lambda: i in got, 10):
                sys.exit('round trip %d lost' % i)
        lat.append(got[i] - t0)
    lat.sort()
    print('p50_us %d' % (lat[len(lat) // 2] * 1e6))
    print('p99_us %d' % (lat[int(len(lat) * 0.99) - 1] * 1e6))
    base = n
    start = time.perf_counter()
    for i in range(base, base + n):
        with cond:
            cond.wait_for(lambda: sum(1 for k in got if k >= base) >= i - base - window + 1, 30)
        send(i)
    with cond:
        ok = cond.wait_for(lambda: sum(1 for k in got if k >= base) >= n, 60)
    elapsed = time.perf_counter() - start
    received = sum(1 for k in got if k >= base)
    print('per_s %d' % (received / elapsed))
    print('received %d of %d' % (received, n))
    c.loop_stop()
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
