"""Plays the AWS IoT Jobs service for tests/jobs.rs, on a mosquitto standing in for AWS IoT Core.

Usage: python jobs_service.py PORT CA CERT KEY THING JOBS_JSON

JOBS_JSON is a list of {"jobId": ..., "document": {...}}, queued in that order. The service
answers `$aws/things/THING/jobs/start-next` with the first IN_PROGRESS or QUEUED execution
(as AWS IoT's StartNextPendingJobExecution does) or with no execution, records every
`.../jobs/<jobId>/update` and accepts it, and publishes notify-next when a job ends and another
is queued. It prints one line per fact, flushed:
  ready
  START <jobId>
  UPDATE <jobId> <STATUS> <statusDetails as JSON>
"""
import json
import sys
import time

import paho.mqtt.client as mqtt

port, ca, cert, key, thing, jobs_file = sys.argv[1:7]
base = f"$aws/things/{thing}/jobs"
jobs = [{"jobId": j["jobId"], "document": j["document"], "status": "QUEUED", "version": 1}
        for j in json.load(open(jobs_file))]


def say(line):
    print(line, flush=True)


def now():
    return int(time.time())


def execution(j):
    return {"jobId": j["jobId"], "thingName": thing, "jobDocument": j["document"],
            "status": j["status"], "queuedAt": now(), "lastUpdatedAt": now(),
            "versionNumber": j["version"], "executionNumber": 1}


def pending():
    for j in jobs:
        if j["status"] == "IN_PROGRESS":
            return j
    for j in jobs:
        if j["status"] == "QUEUED":
            return j
    return None


def notify_next(c):
    j = pending()
    body = {"timestamp": now()}
    if j:
        body["execution"] = execution(j)
    c.publish(f"{base}/notify-next", json.dumps(body), qos=1)


def on_message(c, _ud, m):
    try:
        req = json.loads(m.payload or b"{}")
    except ValueError:
        req = {}
    token = req.get("clientToken")
    if m.topic == f"{base}/start-next":
        j = pending()
        reply = {"timestamp": now(), "clientToken": token}
        if j:
            if j["status"] == "QUEUED":
                j["status"] = "IN_PROGRESS"
                j["version"] += 1
            say(f"START {j['jobId']}")
            reply["execution"] = execution(j)
        c.publish(f"{base}/start-next/accepted", json.dumps(reply), qos=1)
        return
    parts = m.topic[len(base) + 1:].split("/")
    if len(parts) == 2 and parts[1] == "update":
        job_id = parts[0]
        status = req.get("status", "?")
        say(f"UPDATE {job_id} {status} {json.dumps(req.get('statusDetails', {}), sort_keys=True)}")
        j = next((x for x in jobs if x["jobId"] == job_id), None)
        if j is None:
            c.publish(f"{base}/{job_id}/update/rejected",
                      json.dumps({"code": "ResourceNotFound", "timestamp": now()}), qos=1)
            return
        j["status"] = status
        j["version"] += 1
        c.publish(f"{base}/{job_id}/update/accepted",
                  json.dumps({"timestamp": now(), "clientToken": token}), qos=1)
        if status in ("SUCCEEDED", "FAILED", "REJECTED") and pending():
            notify_next(c)


c = mqtt.Client(client_id="jobs-service", clean_session=True, protocol=mqtt.MQTTv311)
c.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
c.on_message = on_message
subscribed = []
c.on_subscribe = lambda *_a: subscribed.append(1)
c.connect("127.0.0.1", int(port), 60)
c.subscribe([(f"{base}/start-next", 1), (f"{base}/+/update", 1)])
c.loop_start()
while not subscribed:
    time.sleep(0.01)
notify_next(c)
say("ready")
while True:
    time.sleep(1)
