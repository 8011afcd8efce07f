"""In-process shared state: the embedded default (one process, no server to install).

Everything lives in this process's memory and event loop; expired keys and logs are
dropped lazily (on access, and by a sweep every :data:`SWEEP_EVERY` writes), so memory
stays bounded by what is live.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from integrations.shared_state.subscription import QueueSubscription

SWEEP_EVERY = 1000
"""Writes between two sweeps of expired keys and logs."""


@dataclass
class _Log:
    entries: deque[tuple[int, str]]
    last_seq: int = 0
    expires: float = 0.0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class MemorySharedState:
    """:class:`~integrations.shared_state.base.SharedState` in this process's memory.

    Args:
        clock: Monotonic seconds (tests pass a fake one to expire keys).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        """Empty state."""
        self._clock = clock
        self._keys: dict[str, tuple[str, float]] = {}
        self._logs: dict[str, _Log] = {}
        self._channels: dict[str, set[QueueSubscription]] = {}
        self._writes = 0

    @property
    def distributed(self) -> bool:
        """Never: other processes do not see this state."""
        return False

    async def put(
        self, key: str, value: str, *, ttl_s: float, only_if_absent: bool = False
    ) -> bool:
        """Set ``key`` (see :meth:`SharedState.put`)."""
        _check_ttl(ttl_s)
        if only_if_absent and self._live_key(key) is not None:
            return False
        self._keys[key] = (value, self._clock() + ttl_s)
        self._wrote()
        return True

    async def get(self, key: str) -> str | None:
        """The live value of ``key``."""
        return self._live_key(key)

    async def delete(self, key: str) -> bool:
        """Remove ``key``."""
        existed = self._live_key(key) is not None
        self._keys.pop(key, None)
        return existed

    async def add(self, key: str, delta: int, *, ttl_s: float) -> int:
        """Add ``delta`` to the counter at ``key``."""
        _check_ttl(ttl_s)
        current = self._live_key(key)
        if current is None:
            value, expires = delta, self._clock() + ttl_s
        else:
            value, expires = int(current) + delta, self._keys[key][1]
        self._keys[key] = (str(value), expires)
        self._wrote()
        return value

    async def append(self, log: str, entry: str, *, max_len: int, ttl_s: float) -> int:
        """Append to a bounded log."""
        _check_ttl(ttl_s)
        found = self._live_log(log)
        if found is None:
            found = self._logs[log] = _Log(deque(maxlen=max(1, max_len)))
        found.last_seq += 1
        found.entries.append((found.last_seq, entry))
        found.expires = self._clock() + ttl_s
        found.wake()
        self._wrote()
        return found.last_seq

    async def read(self, log: str, after: int, *, wait_s: float = 0.0) -> list[tuple[int, str]]:
        """Entries after ``after``, waiting up to ``wait_s`` for one."""
        deadline = self._clock() + max(0.0, wait_s)
        while True:
            found = self._live_log(log)
            entries = [e for e in found.entries if e[0] > after] if found else []
            left = deadline - self._clock()
            if entries or left <= 0:
                return entries
            if found is None:
                # nothing to wait on yet: poll for the log's creation
                await asyncio.sleep(min(left, 0.05))
                continue
            try:
                await asyncio.wait_for(found.changed.wait(), left)
            except TimeoutError:
                pass

    async def publish(self, channel: str, message: str) -> None:
        """Deliver to this channel's current subscribers."""
        for subscription in list(self._channels.get(channel, ())):
            subscription.deliver(message)

    async def subscribe(self, channel: str) -> QueueSubscription:
        """Listen on ``channel`` from now on."""
        subscription = QueueSubscription(channel, self._unsubscribe)
        self._channels.setdefault(channel, set()).add(subscription)
        return subscription

    async def aclose(self) -> None:
        """End every subscription."""
        for subscriptions in list(self._channels.values()):
            for subscription in list(subscriptions):
                await subscription.aclose()

    async def _unsubscribe(self, subscription: QueueSubscription) -> None:
        subscriptions = self._channels.get(subscription.channel)
        if subscriptions is not None:
            subscriptions.discard(subscription)
            if not subscriptions:
                del self._channels[subscription.channel]

    def _live_key(self, key: str) -> str | None:
        found = self._keys.get(key)
        if found is None:
            return None
        if found[1] <= self._clock():
            del self._keys[key]
            return None
        return found[0]

    def _live_log(self, log: str) -> _Log | None:
        found = self._logs.get(log)
        if found is not None and found.expires <= self._clock():
            del self._logs[log]
            return None
        return found

    def _wrote(self) -> None:
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:
            now = self._clock()
            for key in [k for k, (_, exp) in self._keys.items() if exp <= now]:
                del self._keys[key]
            for log in [k for k, found in self._logs.items() if found.expires <= now]:
                del self._logs[log]


def _check_ttl(ttl_s: float) -> None:
    if not ttl_s > 0:
        raise ValueError(f"ttl_s must be > 0, got {ttl_s}")
