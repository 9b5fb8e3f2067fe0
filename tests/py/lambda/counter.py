# The guide's counter, unmodified SDK use: state kept at module level between invocations;
# each invocation publishes {"count", "pid", "subject"} on out/<function name>.
import json
import os

import greengrasssdk

client = greengrasssdk.client('iot-data')
count = 0


def handler(event, context):
    global count
    count += 1
    print('invoked', count)
    subject = context.client_context.custom.get('subject', '')
    if isinstance(event, dict) and event.get('sleep'):
        import time
        time.sleep(event['sleep'])
    client.publish(
        topic='out/' + context.function_name,
        payload=json.dumps({'count': count, 'pid': os.getpid(), 'subject': subject,
                            'uid': os.getuid(), 'gid': os.getgid(),
                            'thing': os.environ.get('AWS_IOT_THING_NAME'),
                            'region': os.environ.get('AWS_REGION'),
                            'custom_var': os.environ.get('CUSTOM_VAR'),
                            'event': event}))
    return {'count': count}
