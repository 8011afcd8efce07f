"""The campaign job queue: a huey instance from one URL, and a lock that survives ``kill -9``.

huey keeps jobs durable in its storage: SQLite (the embedded default, no server), Redis
(several worker processes on several hosts) or PostgreSQL, with the same task code. Its
honest limit: a job that a worker was executing when the worker was killed is gone
from the queue (huey removes a job when it starts it). The campaign's truth is
therefore in the call-record database (attempt rows claimed once, unique per contact
and number) and a periodic reconcile re-enqueues whatever is due; a duplicate job is
harmless because the claim refuses it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from huey import Huey, PostgresHuey, RedisHuey, SqliteHuey

QUEUE_NAME = "callagent-outbound"
EXAMPLES = "sqlite:///path/queue.db (embedded), redis://host:6379/0 or postgresql://user@host/db"


class QueueUrlError(ValueError):
    """A queue URL huey cannot use (the message says what a good one looks like)."""

    def __init__(self, problem: str):
        super().__init__(f"{problem}; use {EXAMPLES}")


@dataclass(frozen=True)
class QueueBackend:
    """Where the queue lives.

    Parameters:
        kind: ``sqlite``, ``redis`` or ``postgresql``.
        target: The SQLite file path, or the server URL.
    """

    kind: str
    target: str

    @property
    def distributed(self) -> bool:
        """Whether worker processes on other hosts can share it."""
        return self.kind != "sqlite"


def default_queue_url(data_dir: Path) -> str:
    """The embedded default: SQLite beside the call records."""
    return f"sqlite:///{(Path(data_dir) / 'queue.db').expanduser().resolve()}"


def parse_queue_url(url: str) -> QueueBackend:
    """Which huey storage ``url`` names.

    Raises:
        QueueUrlError: Not ``sqlite:///path``, ``redis://host:port/db`` or
            ``postgresql://user@host/db``.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        # as SQLAlchemy: sqlite:///relative/queue.db, sqlite:////absolute/queue.db
        path = url[len("sqlite:///") :] if url.lower().startswith("sqlite:///") else ""
        if not path:
            raise QueueUrlError("a SQLite queue URL needs a file path")
        return QueueBackend("sqlite", path)
    if scheme in ("redis", "rediss"):
        if not parts.hostname:
            raise QueueUrlError("a Redis queue URL needs a host")
        return QueueBackend("redis", url)
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        if not parts.hostname and not parts.path.strip("/"):
            raise QueueUrlError("a PostgreSQL queue URL needs a host or database")
        return QueueBackend("postgresql", "postgresql://" + url.split("://", 1)[1])
    raise QueueUrlError("not a queue URL huey can use")


def make_huey(url: str, *, name: str = QUEUE_NAME, immediate: bool = False) -> Huey:
    """The huey instance for ``url`` (see :func:`parse_queue_url`).

    Results are not stored: tasks report through the database, and a result nobody reads
    would only grow the storage.
    """
    backend = parse_queue_url(url)
    if backend.kind == "sqlite":
        Path(backend.target).parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name, filename=backend.target, results=False, immediate=immediate)
    if backend.kind == "redis":
        return RedisHuey(name, url=backend.target, results=False, immediate=immediate)
    return PostgresHuey(name, dsn=backend.target, results=False, immediate=immediate)


class StaleLock:
    """A short mutual-exclusion lock in huey's storage that a killed holder cannot wedge.

    huey's own ``lock_task`` is freed only by its holder (or by a consumer flushing
    locks at start, which would also free a live peer's); with SQLite storage it has no
    expiry. This lock stores when it was taken, and a lock older than ``stale_s`` is
    taken over: hold it only for work far shorter than that (a few database reads and
    writes). Two contenders may both break the same stale lock in the same instant;
    that needs a holder killed inside the lock and costs at most one extra entry.

    Args:
        huey: Whose storage keeps the lock (shared by every worker of the queue).
        stale_s: A lock this old is taken over.
        wait_s: How long :meth:`hold` keeps trying before giving up.
    """

    def __init__(self, huey: Huey, *, stale_s: float = 10.0, wait_s: float = 2.0):
        self._huey = huey
        self.stale_s = stale_s
        self.wait_s = wait_s

    def _key(self, name: str) -> str:
        return f"{self._huey.name}.stale-lock.{name}"

    def try_acquire(self, name: str) -> bool:
        """Take the lock ``name`` if it is free or stale."""
        key = self._key(name)
        if self._huey.put_if_empty(key, time.time()):
            return True
        taken_at = self._huey.get(key, peek=True)
        if isinstance(taken_at, float) and time.time() - taken_at > self.stale_s:
            self._huey.delete(key)
            return bool(self._huey.put_if_empty(key, time.time()))
        return False

    def release(self, name: str) -> None:
        """Free the lock ``name``."""
        self._huey.delete(self._key(name))

    @contextmanager
    def hold(self, name: str) -> Iterator[bool]:
        """Hold ``name`` for the block; yields False (not held) after ``wait_s`` of trying."""
        deadline = time.monotonic() + self.wait_s
        held = self.try_acquire(name)
        while not held and time.monotonic() < deadline:
            time.sleep(0.01)
            held = self.try_acquire(name)
        try:
            yield held
        finally:
            if held:
                self.release(name)
