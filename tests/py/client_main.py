"""The end of every test client script (tests/py/*_device.py): run one command, print
`error TYPE: MESSAGE` if it raised, exit at once."""
import logging
import os
import sys


def run(command, *args):
    """Runs command(*args) with the SDK's DEBUG log on stderr; exits 1 after printing
    `error ...` when it raised, else 0."""
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    code = 0
    try:
        command(*args)
    except Exception as e:  # the SDK raises its own exception types
        print(f"error {type(e).__name__}: {e}", flush=True)
        code = 1
    sys.stdout.flush()
    # The SDK leaves non-daemon threads behind (reconnect and timer threads): exit anyway.
    os._exit(code)
