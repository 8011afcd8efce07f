"""A stand-in server worker for the supervisor tests: the supervisor's protocol, no models.

Run as ``python -m tests.support.stub_worker LISTEN_FD STATUS_FD``: it serves HTTP on the
inherited listening socket (``GET /`` -> its pid; ``GET /recycle`` -> it asks the
supervisor for a replacement), says ``ready`` once accepting, exits 0 on SIGTERM, and on
SIGUSR1 (retire) stops accepting and exits 0 -- as ``callagent serve`` does under the
supervisor (``bot/serving/server.py``), in milliseconds. With :data:`FAIL_ONCE` it can
die before it accepts.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

FAIL_ONCE = "STUB_WORKER_FAIL_ONCE"
"""A file's path: the next worker started while it exists removes it and dies before ready."""


def main() -> None:
    listen_fd, status_fd = int(sys.argv[1]), int(sys.argv[2])
    marker = os.environ.get(FAIL_ONCE, "")
    if marker and os.path.exists(marker):
        os.remove(marker)
        sys.exit(1)  # as a worker whose models fail to load
    sock = socket.socket(fileno=listen_fd)
    # every worker wakes for a connection, one accepts it: the others must not block in
    # accept() (asyncio's server, in the real workers, never does)
    sock.setblocking(False)

    def tell(kind: str) -> None:
        os.write(status_fd, f"{kind} {os.getpid()}\n".encode())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path == "/recycle":
                tell("recycle")
            body = json.dumps({"pid": os.getpid()}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = HTTPServer(sock.getsockname()[:2], Handler, bind_and_activate=False)
    server.socket = sock
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    tell("ready")
    stop.wait()
    server.shutdown()
    thread.join()
    sys.exit(0)


if __name__ == "__main__":
    main()
