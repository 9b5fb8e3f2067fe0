# Invokes another function through the SDK's Lambda client and publishes what came back on
# out/caller. Event: {"target": ARN, "type": "RequestResponse"|"Event", "payload": {...}},
# or {"publish": TOPIC, "policy": "AllOrException", "n": N} to publish N messages.
import json

import greengrasssdk

lam = greengrasssdk.client('lambda')
iot = greengrasssdk.client('iot-data')


def handler(event, context):
    if 'publish' in event:
        ok, failed = 0, 0
        for i in range(event.get('n', 1)):
            try:
                iot.publish(topic=event['publish'], queueFullPolicy=event.get('policy', ''),
                            payload=json.dumps({'i': i}))
                ok += 1
            except Exception as e:
                failed += 1
                last = str(e)
        iot.publish(topic='out/caller', payload=json.dumps(
            {'published': ok, 'failed': failed, 'error': last if failed else ''}))
        return
    if 'steal' in event:
        # Ask for another function's work with this worker's own token.
        import os
        try:
            from urllib.request import Request, urlopen
            from urllib.error import HTTPError
        except ImportError:
            from urllib2 import Request, urlopen, HTTPError
        url = 'http://127.0.0.1:{}/2016-11-01/functions/{}/work'.format(
            os.environ['GG_DAEMON_PORT'], event['steal'])
        req = Request(url, headers={'Authorization': os.environ['AWS_CONTAINER_AUTHORIZATION_TOKEN']})
        try:
            urlopen(req, timeout=10)
            code = 200
        except HTTPError as e:
            code = e.code
        iot.publish(topic='out/caller', payload=json.dumps({'steal': code}))
        return
    if 'shadow' in event:
        # Update then get the thing's shadow; then get one of a thing the core does not know.
        out = {}
        try:
            iot.update_thing_shadow(thingName=event['shadow'], payload=json.dumps(
                {'state': {'reported': {'color': 'green'}}}))
            r = iot.get_thing_shadow(thingName=event['shadow'])
            out['shadow'] = json.loads(r['payload'].decode())['state']
        except Exception as e:
            out['shadow_error'] = str(e)
        try:
            iot.get_thing_shadow(thingName=event['missing'])
        except Exception as e:
            out['missing_error'] = str(e)
        iot.publish(topic='out/caller', payload=json.dumps(out))
        return
    r = lam.invoke(FunctionName=event['target'], InvocationType=event.get('type', 'RequestResponse'),
                   Payload=json.dumps(event.get('payload', {})))
    payload = r['Payload']
    if hasattr(payload, 'read'):
        payload = payload.read()
    if isinstance(payload, bytes):
        payload = payload.decode()
    iot.publish(topic='out/caller', payload=json.dumps(
        {'payload': payload, 'error': r['FunctionError']}))
