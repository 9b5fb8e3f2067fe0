"""An HTTPS file server for tests/jobs.rs (its certificate from the test's own CA).

Usage: python https_files.py PORT CERT KEY DIR
Serves DIR over HTTPS on 127.0.0.1:PORT (HTTP/1.0 responses with Content-Length) and prints
"ready", then one "GET <path>" line per request.
"""
import functools
import http.server
import ssl
import sys

port, cert, key, root = sys.argv[1:5]


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        print(f"GET {self.path}", flush=True)


httpd = http.server.ThreadingHTTPServer(
    ("127.0.0.1", int(port)), functools.partial(Handler, directory=root))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
print("ready", flush=True)
httpd.serve_forever()
