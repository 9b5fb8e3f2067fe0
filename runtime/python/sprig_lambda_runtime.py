"""sprig's Python Lambda runtime: loads HANDLER (module.function) from the function's code
directory (the working directory), reports initialization, then runs invocations forever.

    python3 -u sprig_lambda_runtime.py HANDLER TIMEOUT_SECONDS

Module-level code of the handler's module runs once at start (pinned functions rely on it).
The root logger writes INFO and below to stdout and WARNING and above to stderr; the core puts
both in the function's log file.
"""
import base64
import importlib
import json
import logging
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.getcwd()] + [p for p in sys.path if p not in ('', HERE)] + [HERE]

from greengrass_common.function_arn_fields import FunctionArnFields  # noqa: E402
from greengrass_ipc_python_sdk.ipc_client import IPCClient, WorkItem  # noqa: E402


class _Below(logging.Filter):
    def filter(self, record):
        return record.levelno < logging.WARNING


def setup_logging():
    fmt = logging.Formatter('%(filename)s:%(lineno)d,%(message)s')
    out = logging.StreamHandler(sys.stdout)
    out.setLevel(logging.DEBUG)
    out.addFilter(_Below())
    out.setFormatter(fmt)
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.WARNING)
    err.setFormatter(fmt)
    root = logging.getLogger()
    root.handlers[:] = [out, err]
    root.setLevel(logging.INFO)


class ClientContext(object):
    def __init__(self, raw):
        self.custom = {}
        self.client = None
        self.env = None
        if raw:
            try:
                obj = json.loads(base64.b64decode(raw).decode('utf-8'))
                self.custom = obj.get('custom') or {}
                self.client = obj.get('client')
                self.env = obj.get('env')
            except Exception:
                logging.getLogger(__name__).warning('cannot decode the client context')


class Context(object):
    def __init__(self, arn, invocation_id, raw_context, timeout_s):
        fields = FunctionArnFields(arn)
        self.function_name = fields.name
        self.function_version = fields.qualifier or '$LATEST'
        self.invoked_function_arn = arn
        self.memory_limit_in_mb = None
        self.aws_request_id = invocation_id
        self.log_group_name = None
        self.log_stream_name = None
        self.identity = None
        self.client_context = ClientContext(raw_context)
        self._deadline = time.time() + timeout_s

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.time()) * 1000))


def decode_event(payload, binary):
    if binary:
        return payload
    if not payload:
        return {}
    try:
        return json.loads(payload.decode('utf-8'))
    except ValueError:
        # Not JSON (a device published plain text): hand the text over as it is.
        return payload.decode('utf-8', 'replace')


def encode_result(result, binary):
    if binary:
        if result is None:
            return b''
        if isinstance(result, bytes):
            return result
        if isinstance(result, str):
            return result.encode('utf-8')
        return json.dumps(result).encode('utf-8')
    return json.dumps(result).encode('utf-8')


def main():
    handler_name = sys.argv[1]
    timeout_s = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    setup_logging()
    arn = os.environ['MY_FUNCTION_ARN']
    binary = os.environ.get('ENCODING_TYPE') == 'binary'
    ipc = IPCClient()
    try:
        module_name, func_name = handler_name.rsplit('.', 1)
        handler = getattr(importlib.import_module(module_name.replace('/', '.')), func_name)
    except Exception:
        text = traceback.format_exc()
        sys.stderr.write(text)
        ipc.put_initialization_result(arn, False, text)
        sys.exit(1)
    ipc.put_initialization_result(arn, True, '')
    while True:
        work = ipc.get_work(arn)
        context = Context(arn, work.invocation_id, work.client_context, timeout_s)
        try:
            result = handler(decode_event(work.payload, binary), context)
            body = encode_result(result, binary)
        except Exception as e:
            sys.stderr.write(traceback.format_exc())
            ipc.post_handler_err(arn, work.invocation_id, '{}: {}'.format(type(e).__name__, e))
            continue
        ipc.post_work_result(arn, WorkItem(work.invocation_id, body, None))


if __name__ == '__main__':
    main()
