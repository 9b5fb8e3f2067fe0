# A pinned function that uses the stream manager the way the guide's TransferStream sample does:
# a StreamManagerClient() with no arguments at import (port and token from the environment the
# core gives workers), a stream created, messages appended. tests/streams.rs reads the result from
# the stream's files (no other client may connect: authentication is on).
import greengrasssdk  # noqa: F401  (the SDK as deployed with the function)
from greengrasssdk.stream_manager import (
    MessageStreamDefinition,
    StrategyOnFull,
    StreamManagerClient,
)

client = StreamManagerClient()
client.create_message_stream(
    MessageStreamDefinition(name="fromfn", strategy_on_full=StrategyOnFull.RejectNewData)
)
for i in range(3):
    client.append_message("fromfn", b"appended-by-a-lambda-%d" % i)


def handler(event, context):
    pass
