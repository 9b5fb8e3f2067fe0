# EncodingType binary: the event is the payload's raw bytes; publishes bytes back.
import greengrasssdk

iot = greengrasssdk.client('iot-data')


def handler(event, context):
    assert isinstance(event, bytes), type(event)
    iot.publish(topic='out/binary', payload=b'raw:' + event[::-1])
    return event
