"""A throw-away redis-server on loopback (the queue's tests and the campaign bench)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from simulator.ports import free_tcp_port


class RedisUnavailable(RuntimeError):
    """No redis-server could be started here (the message says why)."""


@contextmanager
def local_redis(start_timeout_s: float = 10.0) -> Iterator[str]:
    """Start redis-server on a free loopback port (no persistence); yields its URL.

    Raises:
        RedisUnavailable: redis-server is not installed or did not start.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable("redis-server is not installed (apt-get install redis-server)")
    port = free_tcp_port()
    workdir = tempfile.mkdtemp(prefix="callagent-redis-")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", workdir]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RedisUnavailable(f"redis-server did not start on port {port}") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
