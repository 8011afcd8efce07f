"""Shared state on PostgreSQL: tables for keys and logs, ``LISTEN/NOTIFY`` to wake and deliver.

* keys (``callagent_shared_keys``): one row per key with its expiry; ``put`` is an upsert
  (``only_if_absent`` updates only an expired row, so of racing puts exactly one wins),
  ``add`` an upsert adding to the value;
* logs: a head row per log (``callagent_shared_logs``: last sequence number, expiry) that
  numbers appends under its row lock, entries in ``callagent_shared_log_entries``; each
  append notifies :data:`LOG_CHANNEL` with the log's name, which wakes waiting readers;
* channels: ``NOTIFY`` on a channel named from a hash of the channel's name (PostgreSQL
  names stop at 63 bytes); a message must be under :data:`MAX_MESSAGE_BYTES`.

The tables are created on first use (``CREATE TABLE IF NOT EXISTS``, ``UNLOGGED``: this
state is short-lived, and a database crash empties them as a restart empties a Redis
without persistence). Expired rows are swept every :data:`SWEEP_EVERY_S` by whichever
process writes. A lost connection raises
:class:`~integrations.shared_state.base.SharedStateError` with ``retryable=True``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, LiteralString, TypeVar

import psycopg
from loguru import logger

from integrations.shared_state.base import SharedStateError
from integrations.shared_state.postgres_listener import (
    LOG_CHANNEL,
    POLL_SLICE_S,
    Listener,
    notify_name,
)
from integrations.shared_state.subscription import QueueSubscription

T = TypeVar("T")

MAX_MESSAGE_BYTES = 7999
"""Longest message ``publish`` takes: PostgreSQL refuses ``NOTIFY`` payloads of 8000 bytes."""
SWEEP_EVERY_S = 60.0
"""Seconds between two sweeps of expired rows by one process."""
APPLICATION_NAME = "callagent-shared-state"
"""``application_name`` of this engine's connections (to find them in ``pg_stat_activity``)."""
COMMAND_TIMEOUT_S = 10.0
"""Longest one operation may take (connecting included) before it fails as retryable."""
POOL_SIZE = 4
"""Connections one process opens for commands (plus one listening)."""

_SCHEMA: list[LiteralString] = [
    "SELECT pg_advisory_xact_lock(hashtext('callagent_shared_schema'))",
    """CREATE UNLOGGED TABLE IF NOT EXISTS callagent_shared_keys (
        key text PRIMARY KEY, value text NOT NULL, expires timestamptz NOT NULL)""",
    """CREATE UNLOGGED TABLE IF NOT EXISTS callagent_shared_logs (
        log text PRIMARY KEY, last_seq bigint NOT NULL, expires timestamptz NOT NULL)""",
    """CREATE UNLOGGED TABLE IF NOT EXISTS callagent_shared_log_entries (
        log text NOT NULL, seq bigint NOT NULL, entry text NOT NULL, PRIMARY KEY (log, seq))""",
]
_PUT = """INSERT INTO callagent_shared_keys AS k (key, value, expires)
    VALUES (%(key)s, %(value)s, now() + make_interval(secs => %(ttl)s))
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires"""
_PUT_IF_ABSENT = _PUT + " WHERE k.expires <= now()"
_ADD = """INSERT INTO callagent_shared_keys AS k (key, value, expires)
    VALUES (%(key)s, %(delta)s::text, now() + make_interval(secs => %(ttl)s))
    ON CONFLICT (key) DO UPDATE SET
        value = CASE WHEN k.expires <= now() THEN excluded.value
                     ELSE (k.value::bigint + %(delta)s)::text END,
        expires = CASE WHEN k.expires <= now() THEN excluded.expires ELSE k.expires END
    RETURNING value"""
_NEXT_SEQ = """INSERT INTO callagent_shared_logs AS l (log, last_seq, expires)
    VALUES (%(log)s, 1, now() + make_interval(secs => %(ttl)s))
    ON CONFLICT (log) DO UPDATE SET
        last_seq = CASE WHEN l.expires <= now() THEN 1 ELSE l.last_seq + 1 END,
        expires = excluded.expires
    RETURNING last_seq"""
_READ = """SELECT e.seq, e.entry FROM callagent_shared_log_entries e
    JOIN callagent_shared_logs l ON l.log = e.log
    WHERE e.log = %(log)s AND e.seq > %(after)s AND l.expires > now() ORDER BY e.seq"""
_SWEEP: list[LiteralString] = [
    "DELETE FROM callagent_shared_keys WHERE expires <= now()",
    """DELETE FROM callagent_shared_log_entries e USING callagent_shared_logs l
        WHERE l.log = e.log AND l.expires <= now()""",
    "DELETE FROM callagent_shared_logs WHERE expires <= now()",
]


def _ttl(ttl_s: float) -> float:
    if not ttl_s > 0:
        raise ValueError(f"ttl_s must be > 0, got {ttl_s}")
    return float(ttl_s)


class PostgresSharedState:
    """:class:`~integrations.shared_state.base.SharedState` on a PostgreSQL database.

    Args:
        url: ``postgresql://user:password@host:port/db`` (libpq form).
        timeout_s: Longest wait to connect.
    """

    def __init__(self, url: str, *, timeout_s: float = 5.0):
        """A client for ``url`` (nothing connects yet)."""
        self._url = url
        self._timeout_s = timeout_s
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._slots = asyncio.Semaphore(POOL_SIZE)
        self._schema_ready = False
        self._schema_lock = asyncio.Lock()
        self._last_sweep = time.monotonic()
        self._sweeper: asyncio.Task[None] | None = None
        self._listener: Listener | None = None

    @property
    def distributed(self) -> bool:
        """Always: every process on this database sees the same state."""
        return True

    async def put(
        self, key: str, value: str, *, ttl_s: float, only_if_absent: bool = False
    ) -> bool:
        """Set ``key`` (see :meth:`SharedState.put`)."""
        params = {"key": key, "value": value, "ttl": _ttl(ttl_s)}
        sql = _PUT_IF_ABSENT if only_if_absent else _PUT
        rows = await self._run("put", key, lambda c: _rowcount(c, sql, params))
        self._maybe_sweep()
        return rows == 1

    async def get(self, key: str) -> str | None:
        """The live value of ``key``."""
        sql = "SELECT value FROM callagent_shared_keys WHERE key = %(key)s AND expires > now()"
        row = await self._run("get", key, lambda c: _one(c, sql, {"key": key}))
        return None if row is None else str(row[0])

    async def delete(self, key: str) -> bool:
        """Remove ``key``."""
        sql = "DELETE FROM callagent_shared_keys WHERE key = %(key)s RETURNING expires > now()"
        row = await self._run("delete", key, lambda c: _one(c, sql, {"key": key}))
        return bool(row and row[0])

    async def add(self, key: str, delta: int, *, ttl_s: float) -> int:
        """Add ``delta`` to the counter at ``key``."""
        params = {"key": key, "delta": int(delta), "ttl": _ttl(ttl_s)}
        row = await self._run("add", key, lambda c: _one(c, _ADD, params))
        self._maybe_sweep()
        assert row is not None
        return int(row[0])

    async def append(self, log: str, entry: str, *, max_len: int, ttl_s: float) -> int:
        """Append to a bounded log."""
        params = {"log": log, "ttl": _ttl(ttl_s)}

        async def run(conn: psycopg.AsyncConnection[Any]) -> int:
            async with conn.transaction():
                row = await _one(conn, _NEXT_SEQ, params)
                assert row is not None
                seq = int(row[0])
                entries = "DELETE FROM callagent_shared_log_entries WHERE log = %s AND seq <= %s"
                # a log that had expired starts again at 1: its old entries go
                await conn.execute(entries, (log, seq - max(1, max_len) if seq > 1 else 2**62))
                insert = "INSERT INTO callagent_shared_log_entries VALUES (%s, %s, %s)"
                await conn.execute(insert, (log, seq, entry))
                await conn.execute("SELECT pg_notify(%s, %s)", (LOG_CHANNEL, log))
            return seq

        seq = await self._run("append", log, run)
        self._maybe_sweep()
        return seq

    async def read(self, log: str, after: int, *, wait_s: float = 0.0) -> list[tuple[int, str]]:
        """Entries after ``after``, waiting up to ``wait_s`` for one (woken by ``NOTIFY``)."""
        deadline = time.monotonic() + max(0.0, wait_s)
        params = {"log": log, "after": after}
        woken: asyncio.Event | None = None
        try:
            while True:
                rows = await self._run("read", log, lambda c: _all(c, _READ, params))
                left = deadline - time.monotonic()
                if rows or left <= 0:
                    return [(int(seq), str(entry)) for seq, entry in rows]
                if woken is None:  # wait from now on; then look once more, not to miss one
                    woken = await self._listening().wait_for_log(log)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), min(left, POLL_SLICE_S))
                woken.clear()
        finally:
            if woken is not None and self._listener is not None:
                self._listener.stop_waiting(log, woken)

    async def publish(self, channel: str, message: str) -> None:
        """Deliver to this channel's current subscribers (on every process).

        Raises:
            SharedStateError: ``message`` is :data:`MAX_MESSAGE_BYTES` or longer (not
                retryable: PostgreSQL ``NOTIFY`` payloads stop below 8000 bytes).
        """
        size = len(message.encode())
        if size > MAX_MESSAGE_BYTES:
            raise SharedStateError(
                f"a message of {size} bytes is too big for PostgreSQL NOTIFY "
                f"(at most {MAX_MESSAGE_BYTES} bytes): send an id and keep the data elsewhere",
                retryable=False,
            )
        sql = "SELECT pg_notify(%s, %s)"
        await self._run(
            "publish", channel, lambda c: c.execute(sql, (notify_name(channel), message))
        )

    async def subscribe(self, channel: str) -> QueueSubscription:
        """Listen on ``channel`` from now on (returns once ``LISTEN`` took effect)."""
        subscription = QueueSubscription(channel, self._unsubscribe)
        await self._listening().add(subscription, notify_name(channel))
        return subscription

    async def aclose(self) -> None:
        """End every subscription and close the connections (idempotent)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.aclose()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()

    def _listening(self) -> Listener:
        if self._listener is None:
            self._listener = Listener(self._connect, self._wake, self._timeout_s)
        return self._listener

    async def _unsubscribe(self, subscription: QueueSubscription) -> None:
        if self._listener is not None:
            await self._listener.remove(subscription, notify_name(subscription.channel))

    async def _wake(self, notify: str) -> None:
        sql = "SELECT pg_notify(%s, '')"
        await self._run("wake", notify, lambda c: c.execute(sql, (notify,)))

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            self._url,
            autocommit=True,
            connect_timeout=max(1, round(self._timeout_s)),
            application_name=APPLICATION_NAME,
            keepalives=1,  # a host gone without closing the connection is noticed in ~25 s
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
        )

    async def _run(
        self,
        operation: str,
        key: str,
        work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]],
    ) -> T:
        """Run ``work`` on a pooled connection, turning failures into :class:`SharedStateError`."""
        async with self._slots:
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                async with asyncio.timeout(COMMAND_TIMEOUT_S):  # a silent server: not a hang
                    conn = self._idle.pop() if self._idle else await self._connect()
                    await self._ensure_schema(conn)
                    result = await work(conn)
            except psycopg.OperationalError as e:
                if conn is not None:
                    with contextlib.suppress(psycopg.Error, OSError):
                        await conn.close()
                logger.warning(
                    f"shared state: PostgreSQL {operation} {key} failed: {type(e).__name__}"
                )
                raise SharedStateError(
                    f"PostgreSQL unreachable ({operation})", retryable=True
                ) from e
            except psycopg.Error as e:
                if conn is not None and not conn.closed:
                    self._idle.append(conn)
                logger.warning(
                    f"shared state: PostgreSQL {operation} {key} refused: {type(e).__name__}"
                )
                raise SharedStateError(
                    f"PostgreSQL refused {operation}: {e}", retryable=False
                ) from e
            except TimeoutError as e:
                if conn is not None:
                    with contextlib.suppress(psycopg.Error, OSError):
                        await conn.close()
                logger.warning(f"shared state: PostgreSQL {operation} {key} timed out")
                raise SharedStateError(
                    f"PostgreSQL did not answer in time ({operation})", retryable=True
                ) from e
            except BaseException:
                if conn is not None:  # cancelled mid-command: the connection's state is unknown
                    with contextlib.suppress(psycopg.Error, OSError):
                        await conn.close()
                raise
            self._idle.append(conn)
            return result

    async def _ensure_schema(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if self._schema_ready:
            return
        async with self._schema_lock:
            if self._schema_ready:
                return
            async with conn.transaction():
                for statement in _SCHEMA:
                    await conn.execute(statement)
            self._schema_ready = True

    def _maybe_sweep(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < SWEEP_EVERY_S or (self._sweeper and not self._sweeper.done()):
            return
        self._last_sweep = now
        self._sweeper = asyncio.create_task(self.sweep())

    async def sweep(self) -> None:
        """Delete expired keys and logs now (also done every :data:`SWEEP_EVERY_S`)."""

        async def run(conn: psycopg.AsyncConnection[Any]) -> None:
            for statement in _SWEEP:
                await conn.execute(statement)

        with contextlib.suppress(SharedStateError):
            await self._run("sweep", "-", run)


async def _rowcount(conn: psycopg.AsyncConnection[Any], sql: LiteralString, params: Any) -> int:
    cursor = await conn.execute(sql, params)
    return cursor.rowcount


async def _one(conn: psycopg.AsyncConnection[Any], sql: LiteralString, params: Any) -> Any:
    cursor = await conn.execute(sql, params)
    return await cursor.fetchone()


async def _all(conn: psycopg.AsyncConnection[Any], sql: LiteralString, params: Any) -> list[Any]:
    cursor = await conn.execute(sql, params)
    return await cursor.fetchall()
