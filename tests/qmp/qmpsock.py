"""What the QMP clients of the tests share (tests/qmp/conformance.py and
tests/guest/scenarios.py): reaching a monitor's unix socket that may not be
there yet. Python 3 standard library only."""
import socket
import time


def connect_unix(path, timeout, interval):
    """A stream socket connected to path, trying every interval seconds
    until timeout seconds have passed (then the last error is raised)."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)
