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
from dataclasses import dataclass

import pytest

from integrations.storage.scratch import scratch_postgres_database
from simulator.redis_server import free_port
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


@dataclass
class KillableRedis:
    """A redis-server this test started and may kill."""

    url: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        """``kill -9`` the server."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@contextmanager
def killable_redis() -> Iterator[KillableRedis]:
    """A redis-server on a free loopback port (or skip when redis-server is missing)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="callagent-redis-")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", workdir]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.skip(f"redis-server did not start on port {port}")
                time.sleep(0.05)
        yield KillableRedis(f"redis://127.0.0.1:{port}/0", process)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
