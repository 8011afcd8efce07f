"""Shared-state test helpers: a URL per engine, and a Redis server a test can kill."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from integrations.storage.scratch import scratch_postgres_database
from simulator.ports import free_tcp_port
from tests.support.queue import redis_server
from tests.support.records import PG_SKIP, postgres_server_url

ENGINES = ["memory", "redis", "postgresql"]


@contextmanager
def shared_state_url(engine: str) -> Iterator[str]:
    """A URL for ``engine`` (``memory`` is ``""``); skips when its server is unavailable."""
    if engine == "memory":
        yield ""
        return
    if engine == "redis":
        with redis_server() as url:
            yield url
        return
    server = postgres_server_url()
    if server is None:
        pytest.skip(PG_SKIP)
    with scratch_postgres_database(server, "callagent_shared") as url:
        yield url.replace("postgresql+psycopg://", "postgresql://", 1)


class KillableRedis:
    """A redis-server this test started on loopback, and may kill and start again."""

    def __init__(self, binary: str, workdir: str):
        """Start it on a free port (or skip the test)."""
        self._binary = binary
        self._workdir = workdir
        self.port = free_tcp_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = self._start()

    def kill(self) -> None:
        """``kill -9`` the server."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def restart(self) -> None:
        """Start a new (empty) server on the same port."""
        self.process = self._start()

    def stop(self) -> None:
        """Stop the server if it runs."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def _start(self) -> subprocess.Popen[bytes]:
        args = [self._binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", self._workdir]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return process
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    pytest.skip(f"redis-server did not start on port {self.port}")
                time.sleep(0.05)


@contextmanager
def killable_redis() -> Iterator[KillableRedis]:
    """A redis-server on a free loopback port (or skip when redis-server is missing)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    workdir = tempfile.mkdtemp(prefix="callagent-redis-")
    server: KillableRedis | None = None
    try:
        server = KillableRedis(binary, workdir)
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
