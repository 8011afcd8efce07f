"""Shared state on Redis: keys with expiry, bounded logs on Streams, channels on pub/sub.

* keys: ``SET PX [NX]``, ``GET``, ``DEL``; counters ``INCRBY`` with the expiry set in the
  same script when the counter is created;
* logs: one Stream per log, entries appended with the explicit id ``0-*`` so Redis numbers
  them 1, 2, 3, ... (the stream remembers its last id after trimming, so numbers are never
  reused), trimmed to ``MAXLEN`` and the expiry refreshed in the same transaction;
  ``read`` waits with ``XREAD BLOCK`` (in slices, so a lost server is noticed);
* channels: ``PUBLISH``; one pub/sub connection per process carries every subscription,
  a reader task hands each message to the queues of that channel's subscribers.

A lost connection raises :class:`~integrations.shared_state.base.SharedStateError` with
``retryable=True`` (logged with the operation and the key, which carries ids only);
subscriptions survive it: the reader reconnects and subscribes again (messages published
meanwhile are lost, as pub/sub is fire-and-forget).
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from loguru import logger
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from integrations.shared_state.base import SharedStateError
from integrations.shared_state.subscription import RECONNECT, QueueSubscription

READ_SLICE_S = 2.0
"""Longest single ``XREAD BLOCK``; a longer wait is several, so a dead server is noticed."""

_ADD = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""
"""INCRBY, and the expiry when this call created the counter (every key here has one)."""

_FIELD = "e"
"""The one field of a log entry in its stream."""


def _ms(ttl_s: float) -> int:
    if not ttl_s > 0:
        raise ValueError(f"ttl_s must be > 0, got {ttl_s}")
    return max(1, math.ceil(ttl_s * 1000))


def _seq(stream_id: str) -> int:
    return int(stream_id.split("-", 1)[1])


class RedisSharedState:
    """:class:`~integrations.shared_state.base.SharedState` on a Redis server.

    Connections open on first use (``redis.asyncio`` pools them); :meth:`ping` checks the
    server at start-up.

    Args:
        url: ``redis://[:password@]host:port/db`` or ``rediss://...`` (TLS).
        timeout_s: Longest wait for the server on any one command (connect included).
    """

    def __init__(self, url: str, *, timeout_s: float = 5.0):
        """A client for ``url`` (nothing connects yet)."""
        self._client: Redis = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout_s + READ_SLICE_S,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
        )
        self._add = self._client.register_script(_ADD)
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._channels: dict[str, set[QueueSubscription]] = {}
        self._confirmations: dict[str, list[asyncio.Future[None]]] = {}
        self._pubsub_lock = asyncio.Lock()

    @property
    def distributed(self) -> bool:
        """Always: every process on this Redis sees the same state."""
        return True

    async def ping(self) -> None:
        """Check the server answers.

        Raises:
            SharedStateError: it does not (retryable).
        """
        await self._call("ping", "-", self._client.ping())

    async def put(
        self, key: str, value: str, *, ttl_s: float, only_if_absent: bool = False
    ) -> bool:
        """Set ``key`` (see :meth:`SharedState.put`)."""
        ms = _ms(ttl_s)
        done = await self._call("put", key, self._client.set(key, value, px=ms, nx=only_if_absent))
        return bool(done)

    async def get(self, key: str) -> str | None:
        """The live value of ``key``."""
        value = await self._call("get", key, self._client.get(key))
        return None if value is None else str(value)

    async def delete(self, key: str) -> bool:
        """Remove ``key``."""
        return bool(await self._call("delete", key, self._client.delete(key)))

    async def add(self, key: str, delta: int, *, ttl_s: float) -> int:
        """Add ``delta`` to the counter at ``key``."""
        ms = _ms(ttl_s)
        value = await self._call("add", key, self._add(keys=[key], args=[delta, ms]))
        return int(value)

    async def append(self, log: str, entry: str, *, max_len: int, ttl_s: float) -> int:
        """Append to a bounded log."""
        ms = _ms(ttl_s)

        async def run() -> Any:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.xadd(log, {_FIELD: entry}, id="0-*", maxlen=max(1, max_len), approximate=False)
                pipe.pexpire(log, ms)
                return await pipe.execute()

        stream_id, _ = await self._call("append", log, run())
        return _seq(stream_id)

    async def read(self, log: str, after: int, *, wait_s: float = 0.0) -> list[tuple[int, str]]:
        """Entries after ``after``, waiting up to ``wait_s`` for one."""
        deadline = time.monotonic() + max(0.0, wait_s)
        block_ms: int | None = None  # the first look does not wait
        while True:
            found = await self._call(
                "read", log, self._client.xread({log: f"0-{max(0, after)}"}, block=block_ms)
            )
            entries = [(_seq(i), fields[_FIELD]) for _, batch in found or [] for i, fields in batch]
            left = deadline - time.monotonic()
            if entries or left <= 0:
                return entries
            block_ms = max(1, math.ceil(min(left, READ_SLICE_S) * 1000))

    async def publish(self, channel: str, message: str) -> None:
        """Deliver to this channel's current subscribers (on every process)."""
        await self._call("publish", channel, self._client.publish(channel, message))

    async def subscribe(self, channel: str) -> QueueSubscription:
        """Listen on ``channel`` from now on (returns once the server confirmed it)."""
        subscription = QueueSubscription(channel, self._unsubscribe)
        async with self._pubsub_lock:
            pubsub = self._start_pubsub()
            subscribers = self._channels.setdefault(channel, set())
            subscribers.add(subscription)
            if len(subscribers) > 1:
                return subscription
            confirmed = asyncio.get_running_loop().create_future()
            self._confirmations.setdefault(channel, []).append(confirmed)
            try:
                await self._call("subscribe", channel, pubsub.subscribe(channel))
                await asyncio.wait_for(asyncio.shield(confirmed), READ_SLICE_S * 2)
            except (SharedStateError, TimeoutError) as e:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._channels[channel]
                if isinstance(e, SharedStateError):
                    raise
                logger.warning(f"shared state: subscribe to {channel} not confirmed")
                raise SharedStateError("the Redis server did not confirm a subscription") from e
        return subscription

    async def aclose(self) -> None:
        """End every subscription and close the connections (idempotent)."""
        for subscribers in list(self._channels.values()):
            for subscription in list(subscribers):
                subscription.end()
        self._channels.clear()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        if self._pubsub is not None:
            try:
                await self._pubsub.aclose()
            except (redis_errors.RedisError, OSError):
                pass
            self._pubsub = None
        try:
            await self._client.aclose()
        except (redis_errors.RedisError, OSError):
            pass

    async def _call(self, operation: str, key: str, command: Any) -> Any:
        """Await one Redis command, turning its failures into :class:`SharedStateError`.

        ``command`` is the awaitable a ``redis.asyncio`` method returned (its stubs type
        it as the sync client's result too, hence ``Any``).
        """
        try:
            return await command
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as e:
            logger.warning(f"shared state: Redis {operation} {key} failed: {type(e).__name__}")
            raise SharedStateError(f"Redis unreachable ({operation})", retryable=True) from e
        except redis_errors.RedisError as e:
            logger.warning(f"shared state: Redis {operation} {key} refused: {type(e).__name__}")
            raise SharedStateError(f"Redis refused {operation}: {e}", retryable=False) from e

    def _start_pubsub(self) -> PubSub:
        if self._pubsub is None:
            self._pubsub = self._client.pubsub()
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read_messages(self._pubsub))
        return self._pubsub

    async def _read_messages(self, pubsub: PubSub) -> None:
        """Hand every message to its channel's subscribers; reconnect when the link drops."""
        failures = 0
        while True:
            try:
                if pubsub.connection is None:  # first subscribe not sent yet
                    await asyncio.sleep(0.01)
                    continue
                message = await pubsub.get_message(timeout=1.0)
                failures = 0
            except (redis_errors.RedisError, OSError) as e:  # any: a dead reader deafens all
                failures += 1
                if failures == 1:
                    logger.warning(f"shared state: Redis pub/sub lost ({type(e).__name__})")
                await asyncio.sleep(RECONNECT.delay_after(failures))
                continue
            if message is None:
                continue
            kind, channel = message.get("type"), message.get("channel")
            if kind == "subscribe" and isinstance(channel, str):
                for confirmed in self._confirmations.pop(channel, []):
                    if not confirmed.done():
                        confirmed.set_result(None)
            elif kind == "message" and isinstance(channel, str):
                for subscription in list(self._channels.get(channel, ())):
                    subscription.deliver(str(message["data"]))

    async def _unsubscribe(self, subscription: QueueSubscription) -> None:
        async with self._pubsub_lock:
            subscribers = self._channels.get(subscription.channel)
            if subscribers is None:
                return
            subscribers.discard(subscription)
            if subscribers or self._pubsub is None:
                return
            del self._channels[subscription.channel]
            try:
                await self._pubsub.unsubscribe(subscription.channel)
            except (redis_errors.RedisError, OSError):
                pass  # the connection is gone; its subscriptions with it
