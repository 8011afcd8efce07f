"""Campaign-queue test helpers: a throw-away redis-server on loopback, queue URLs per backend."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REDIS_ENV = "CALLAGENT_TEST_REDIS_URL"
REDIS_SKIP = (
    "Redis tests need redis-server (apt-get install redis-server; scripts/test.sh and .ci/run "
    f"install it as root) or {REDIS_ENV}"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server() -> Iterator[str]:
    """A Redis URL: ``CALLAGENT_TEST_REDIS_URL``, else a redis-server started here (or skip)."""
    if os.environ.get(REDIS_ENV):
        yield os.environ[REDIS_ENV]
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(REDIS_SKIP)
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="callagent-redis-")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def queue_url(backend: str, tmp: Path) -> Iterator[str]:
    """A fresh queue on ``backend`` (``sqlite`` or ``redis``)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'queue.db'}"
        return
    with redis_server() as url:
        yield url
