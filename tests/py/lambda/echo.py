# Benchmark function: republishes each event on out/echo (device -> function -> device).
import json

import greengrasssdk

iot = greengrasssdk.client('iot-data')


def handler(event, context):
    iot.publish(topic='out/echo', payload=json.dumps(event))
