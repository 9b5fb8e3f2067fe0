"""HTTP/1.1 client of the core's Lambda IPC (loopback, port GG_DAEMON_PORT).

Paths: /2016-11-01/functions/<arn> (invoke, get result), .../work (get work, post result),
.../initialized. Every request carries the worker's token in Authorization. One keep-alive
connection per thread (a handler may publish from a timer thread while the runtime waits).
"""
import base64
import json
import os
import threading

try:
    import http.client as httplib
except ImportError:  # Python 2
    import httplib

from greengrass_common import env_vars

HTTP_PATH = '/2016-11-01/functions/'
HEADER_INVOCATION_ID = 'X-Amz-InvocationId'
HEADER_CLIENT_CONTEXT = 'X-Amz-Client-Context'
HEADER_AUTH_TOKEN = 'Authorization'
HEADER_INVOCATION_TYPE = 'X-Amz-Invocation-Type'
HEADER_FUNCTION_ERR_TYPE = 'X-Amz-Function-Error'


class IPCException(Exception):
    pass


class WorkItem(object):
    def __init__(self, invocation_id, payload, client_context):
        self.invocation_id = invocation_id
        self.payload = payload
        self.client_context = client_context


class GetWorkResultOutput(object):
    def __init__(self, payload, func_err):
        self.payload = payload
        self.func_err = func_err


def _to_bytes(payload):
    if payload is None:
        return b''
    if hasattr(payload, 'read'):
        payload = payload.read()
    if not isinstance(payload, bytes):
        payload = payload.encode('utf-8')
    return payload


def wrap_client_context(custom):
    """Base64 of {"custom": custom}, as the core expects it."""
    return base64.b64encode(json.dumps({'custom': custom}).encode('utf-8')).decode('ascii')


class IPCClient(object):
    def __init__(self, endpoint='localhost', port=None):
        # The core listens on 127.0.0.1 only; 'localhost' may resolve to ::1 first.
        self.endpoint = '127.0.0.1' if endpoint == 'localhost' else endpoint
        self.port = int(port or os.environ.get('GG_DAEMON_PORT') or env_vars.GG_DAEMON_PORT)
        self.auth_token = os.environ.get('AWS_CONTAINER_AUTHORIZATION_TOKEN') or env_vars.AUTH_TOKEN or ''
        self._local = threading.local()

    def _request(self, method, path, body=b'', headers=None):
        h = {HEADER_AUTH_TOKEN: self.auth_token}
        h.update(headers or {})
        url = HTTP_PATH + path
        for attempt in (0, 1):
            conn = getattr(self._local, 'conn', None)
            if conn is None:
                conn = httplib.HTTPConnection(self.endpoint, self.port)
                self._local.conn = conn
            try:
                conn.request(method, url, body=body, headers=h)
                resp = conn.getresponse()
                data = resp.read()
            except (httplib.HTTPException, OSError, IOError) as e:
                conn.close()
                self._local.conn = None
                if attempt == 1:
                    raise IPCException('IPC request {} {} failed: {}'.format(method, url, e))
                continue
            if resp.status >= 400:
                try:
                    message = json.loads(data.decode('utf-8')).get('errorMessage', '')
                except ValueError:
                    message = data.decode('utf-8', 'replace')
                raise IPCException('{} {}: {}'.format(resp.status, resp.reason, message))
            return resp, data

    def post_work(self, function_arn, payload, client_context, invocation_type='RequestResponse'):
        """Invokes function_arn; returns the invocation id."""
        headers = {HEADER_INVOCATION_TYPE: invocation_type or 'RequestResponse'}
        if client_context:
            if isinstance(client_context, bytes):
                client_context = client_context.decode('ascii')
            headers[HEADER_CLIENT_CONTEXT] = client_context
        resp, _ = self._request('POST', function_arn, _to_bytes(payload), headers)
        return resp.getheader(HEADER_INVOCATION_ID)

    def get_work_result(self, function_arn, invocation_id):
        """Waits for and returns an invocation's result (.payload bytes, .func_err str)."""
        resp, data = self._request('GET', function_arn, headers={HEADER_INVOCATION_ID: invocation_id})
        return GetWorkResultOutput(data, resp.getheader(HEADER_FUNCTION_ERR_TYPE) or '')

    def get_work(self, function_arn):
        """Long-polls for this worker's next invocation."""
        resp, data = self._request('GET', function_arn + '/work')
        return WorkItem(resp.getheader(HEADER_INVOCATION_ID), data,
                        resp.getheader(HEADER_CLIENT_CONTEXT) or '')

    def post_work_result(self, function_arn, work):
        """Posts a handler's result; work is a WorkItem whose payload is the result."""
        self._request('POST', function_arn + '/work', _to_bytes(work.payload),
                      {HEADER_INVOCATION_ID: work.invocation_id})

    def post_handler_err(self, function_arn, invocation_id, handler_err):
        """Posts a handler's error (a message string)."""
        body = json.dumps({'errorMessage': handler_err}).encode('utf-8')
        self._request('POST', function_arn + '/work', body,
                      {HEADER_INVOCATION_ID: invocation_id, HEADER_FUNCTION_ERR_TYPE: 'Handled'})

    def put_initialization_result(self, function_arn, success, message=''):
        body = json.dumps({'Success': bool(success), 'Response': message or ''}).encode('utf-8')
        self._request('PUT', function_arn + '/initialized', body)
