"""The one ``LISTEN`` connection of a process using the PostgreSQL shared state.

It wakes readers waiting on a log (``NOTIFY`` on :data:`LOG_CHANNEL` with the log's name)
and hands channel messages to their subscribers. psycopg's ``notifies()`` holds the
connection while it waits, so subscribing does not run ``LISTEN`` itself: it records the
wish and sends a ``NOTIFY`` on this listener's own wake-up channel (from another
connection); the listener then stops waiting, runs the ``LISTEN``/``UNLISTEN`` needed, and
confirms. A lost connection is reopened with every ``LISTEN`` again (messages sent
meanwhile are lost, as ``NOTIFY`` is fire-and-forget).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from loguru import logger
from psycopg import sql

from integrations.shared_state.base import SharedStateError
from integrations.shared_state.subscription import RECONNECT, QueueSubscription

LOG_CHANNEL = "callagent_shared_logs"
"""The ``NOTIFY`` channel announcing appends (payload: the log's name)."""
POLL_SLICE_S = 1.0
"""Longest wait for notifications before the listener (and a waiting read) looks again."""


def notify_name(channel: str) -> str:
    """The PostgreSQL channel carrying ``channel`` (names stop at 63 bytes: hashed)."""
    return "callagent_ch_" + hashlib.sha1(channel.encode()).hexdigest()


Connect = Callable[[], Awaitable[psycopg.AsyncConnection[Any]]]


class Listener:
    """Listens for one process; started by the first subscription or waiting read.

    Args:
        connect: Opens a new autocommit connection.
        wake: Sends a ``NOTIFY`` on the given channel from another connection.
        timeout_s: Longest wait for a ``LISTEN`` to take effect.
    """

    def __init__(self, connect: Connect, wake: Callable[[str], Awaitable[None]], timeout_s: float):
        """Not started yet."""
        self._connect = connect
        self._wake = wake
        self._timeout_s = timeout_s
        self._wake_channel = "callagent_wake_" + secrets.token_hex(8)
        self._channels: dict[str, set[QueueSubscription]] = {}
        self._listened: set[str] = set()
        self._pending: list[asyncio.Future[None]] = []
        self._log_waiters: dict[str, set[asyncio.Event]] = {}
        self._ready: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def add(self, subscription: QueueSubscription, notify: str) -> None:
        """Deliver ``notify``'s messages to ``subscription`` once ``LISTEN`` took effect.

        Raises:
            SharedStateError: the database could not be reached in time (retryable).
        """
        self._start()
        self._channels.setdefault(notify, set()).add(subscription)
        if notify in self._listened:
            return
        confirmed = asyncio.get_running_loop().create_future()
        self._pending.append(confirmed)
        try:
            await self._wake(self._wake_channel)
            await asyncio.wait_for(asyncio.shield(confirmed), self._timeout_s + POLL_SLICE_S)
        except (SharedStateError, TimeoutError) as e:
            self._drop(subscription, notify)
            if isinstance(e, SharedStateError):
                raise
            raise SharedStateError("PostgreSQL did not confirm a subscription") from e

    async def remove(self, subscription: QueueSubscription, notify: str) -> None:
        """Stop delivering to ``subscription`` (``UNLISTEN`` follows within a slice)."""
        self._drop(subscription, notify)

    async def wait_for_log(self, log: str) -> asyncio.Event:
        """An event set at each append to ``log`` from now on (call :meth:`stop_waiting`)."""
        self._start()
        woken = asyncio.Event()
        self._log_waiters.setdefault(log, set()).add(woken)
        assert self._ready is not None
        with contextlib.suppress(TimeoutError):  # not listening yet: the reader polls
            await asyncio.wait_for(asyncio.shield(self._ready), self._timeout_s)
        return woken

    def stop_waiting(self, log: str, woken: asyncio.Event) -> None:
        """Forget a waiting read's event."""
        waiters = self._log_waiters.get(log)
        if waiters is not None:
            waiters.discard(woken)
            if not waiters:
                del self._log_waiters[log]

    async def aclose(self) -> None:
        """End every subscription and close the connection."""
        for subscribers in list(self._channels.values()):
            for subscription in list(subscribers):
                subscription.end()
        self._channels.clear()
        for waiters in self._log_waiters.values():
            for woken in waiters:
                woken.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _start(self) -> None:
        if self._ready is None:
            self._ready = asyncio.get_running_loop().create_future()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen())

    def _drop(self, subscription: QueueSubscription, notify: str) -> None:
        subscribers = self._channels.get(notify)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._channels[notify]

    async def _listen(self) -> None:
        """Connect, listen and dispatch until cancelled; reconnect when the link drops."""
        failures = 0
        while True:
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                conn = await self._connect()
                self._listened = set()
                for name in (self._wake_channel, LOG_CHANNEL):
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(name)))
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(None)
                failures = 0
                while True:
                    await self._reconcile(conn)
                    await self._dispatch(conn)
            except (psycopg.Error, OSError) as e:
                failures += 1
                if failures == 1:
                    logger.warning(f"shared state: PostgreSQL listener lost ({type(e).__name__})")
                await asyncio.sleep(RECONNECT.delay_after(failures))
            finally:
                if conn is not None:
                    with contextlib.suppress(psycopg.Error, OSError):
                        await conn.close()

    async def _reconcile(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """``LISTEN``/``UNLISTEN`` to match the subscriptions; confirm the waiting ones."""
        pending, self._pending = self._pending, []
        wanted = set(self._channels)
        for name in wanted - self._listened:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(name)))
        for name in self._listened - wanted:
            await conn.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(name)))
        self._listened = wanted
        for confirmed in pending:
            if not confirmed.done():
                confirmed.set_result(None)

    async def _dispatch(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Hand out the notifications of the next packet (or none within a slice).

        Every notification of a packet is handed out: the generator stops after the
        packet, never inside it, so none received with a wake-up is dropped.
        """
        async for notify in conn.notifies(timeout=POLL_SLICE_S, stop_after=1):
            if notify.channel == self._wake_channel:
                continue  # the caller reconciles next
            if notify.channel == LOG_CHANNEL:
                for woken in self._log_waiters.get(notify.payload, ()):
                    woken.set()
                continue
            for subscription in list(self._channels.get(notify.channel, ())):
                subscription.deliver(notify.payload)
