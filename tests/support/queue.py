"""Campaign-queue test helpers: queue URLs per backend, Redis on a throw-away local server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from integrations.storage.scratch import scratch_postgres_database
from simulator.redis_server import RedisUnavailable, local_redis
from tests.support.records import PG_SKIP, postgres_server_url

REDIS_ENV = "CALLAGENT_TEST_REDIS_URL"


@contextmanager
def redis_server() -> Iterator[str]:
    """A Redis URL: ``CALLAGENT_TEST_REDIS_URL``, else a redis-server started here (or skip)."""
    if os.environ.get(REDIS_ENV):
        yield os.environ[REDIS_ENV]
        return
    try:
        with local_redis() as url:
            yield url
    except RedisUnavailable as e:
        pytest.skip(
            f"Redis tests skipped: {e}; scripts/test.sh and .ci/run install it as root, "
            f"or set {REDIS_ENV}"
        )


@contextmanager
def queue_url(backend: str, tmp: Path) -> Iterator[str]:
    """A fresh queue on ``backend`` (``sqlite``, ``redis`` or ``postgresql``)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'queue.db'}"
        return
    if backend == "postgresql":
        server = postgres_server_url()
        if server is None:
            pytest.skip(PG_SKIP)
        with scratch_postgres_database(server, "callagent_queue") as url:
            yield url.replace("postgresql+psycopg://", "postgresql://", 1)
        return
    with redis_server() as url:
        yield url
