"""The one subscription every engine hands out: a queue its engine fills.

Each engine (in-process, Redis, PostgreSQL) delivers a channel's messages to the
:class:`QueueSubscription` objects listening on it; the subscriber iterates them until it
closes the subscription (which tells the engine to stop delivering) or the engine ends
it at its own close. The links feeding them reconnect as :data:`RECONNECT` says.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from integrations.retry import RetryPolicy

RECONNECT = RetryPolicy(backoff_s=0.2, max_backoff_s=2.0)
"""How an engine's listening link (Redis pub/sub, PostgreSQL ``LISTEN``) waits between
reconnects: 0.2 s doubling up to 2 s, for as long as the process runs."""


class QueueSubscription:
    """One subscriber's queue of messages on a channel (a :class:`~.base.Subscription`).

    Args:
        channel: The channel listened on.
        unsubscribe: Awaited once, at :meth:`aclose`: the engine stops delivering.
    """

    def __init__(
        self, channel: str, unsubscribe: Callable[[QueueSubscription], Awaitable[None]]
    ) -> None:
        """Listen on ``channel``; ``unsubscribe`` is awaited once at close."""
        self.channel = channel
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._unsubscribe = unsubscribe
        self._closed = False

    def deliver(self, message: str) -> None:
        """Queue ``message`` for the reader."""
        if not self._closed:
            self._queue.put_nowait(message)

    def end(self) -> None:
        """End the iteration without unsubscribing (the engine is closing)."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[str]:
        """The messages until closed."""
        while True:
            message = await self._queue.get()
            if message is None:
                return
            yield message

    async def aclose(self) -> None:
        """Stop listening (idempotent)."""
        if not self._closed:
            self.end()
            await self._unsubscribe(self)
