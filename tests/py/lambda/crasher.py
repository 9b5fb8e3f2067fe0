# Pinned: announces each start at module level (as the guide's HelloWorld publishes outside
# the handler), then crashes the process when asked.
import json
import os

import greengrasssdk

iot = greengrasssdk.client('iot-data')
iot.publish(topic='out/crasher', payload=json.dumps({'started': os.getpid()}))


def handler(event, context):
    os._exit(3)
