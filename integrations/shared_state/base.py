"""The one interface every shared-state engine implements.

Four primitives, chosen because Redis and PostgreSQL both have them natively and every
cross-process need of a call reduces to them:

* **keys with expiry** (:meth:`SharedState.put` / ``get`` / ``delete`` / ``add``): who owns
  a live call, a CallSid seen once, a used token nonce, an operator session, a counter;
* **bounded logs** (:meth:`SharedState.append` / ``read``): a call's event stream that a
  reader on any host can follow, waiting for new entries;
* **messages** (:meth:`SharedState.publish` / ``subscribe``): fire-and-forget delivery to
  whoever listens on a channel now (a call's owner, a process's inbox).

Values are ``str`` (callers serialise JSON); keys and channel names are plain ASCII
chosen by the caller, with no caller data in them (ids only).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable


class SharedStateError(RuntimeError):
    """The engine could not be reached or refused an operation.

    Parameters:
        message: What failed (no values, ids only).
        retryable: Whether trying again later may succeed (a lost connection is; a
            misconfigured URL is not).
    """

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


@runtime_checkable
class Subscription(Protocol):
    """Messages published on one channel from the moment of subscribing.

    Iterate with ``async for message in subscription``; :meth:`aclose` ends it (the
    iteration then stops).
    """

    def __aiter__(self) -> AsyncIterator[str]:
        """The messages, in publication order."""
        ...

    async def aclose(self) -> None:
        """Stop listening (idempotent)."""
        ...


@runtime_checkable
class SharedState(Protocol):
    """Keys with expiry, bounded logs and channels shared by every process of a deployment."""

    @property
    def distributed(self) -> bool:
        """Whether other processes (and hosts) see the same state."""
        ...

    async def put(
        self, key: str, value: str, *, ttl_s: float, only_if_absent: bool = False
    ) -> bool:
        """Set ``key`` to ``value`` for ``ttl_s`` seconds.

        Args:
            key: The key.
            value: The value.
            ttl_s: Seconds until it expires (> 0).
            only_if_absent: Set only when the key does not exist (or has expired).

        Returns:
            Whether the key was set (always true unless ``only_if_absent`` found it).
        """
        ...

    async def get(self, key: str) -> str | None:
        """The value of ``key``, or None when absent or expired."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key``; whether it existed."""
        ...

    async def add(self, key: str, delta: int, *, ttl_s: float) -> int:
        """Atomically add ``delta`` to the integer at ``key`` (absent = 0).

        The key's expiry is set to ``ttl_s`` when the key is created by this call and left
        as it is otherwise.

        Returns:
            The new value.
        """
        ...

    async def append(self, log: str, entry: str, *, max_len: int, ttl_s: float) -> int:
        """Append ``entry`` to the bounded log ``log``.

        Args:
            log: The log's name.
            entry: The entry.
            max_len: Keep at most this many entries (the oldest go first).
            ttl_s: The whole log expires this long after its last append.

        Returns:
            The entry's sequence number: 1 for a log's first entry, then 2, 3, ...
            (numbers are never reused, also after old entries were dropped).
        """
        ...

    async def read(self, log: str, after: int, *, wait_s: float = 0.0) -> list[tuple[int, str]]:
        """Entries of ``log`` with a sequence number above ``after``, oldest first.

        Args:
            log: The log's name.
            after: The last sequence number the reader has.
            wait_s: When there is none yet, wait up to this long for one.

        Returns:
            ``(seq, entry)`` pairs; empty when none arrived (or the log does not exist).
        """
        ...

    async def publish(self, channel: str, message: str) -> None:
        """Deliver ``message`` to everyone subscribed to ``channel`` now (no one: dropped)."""
        ...

    async def subscribe(self, channel: str) -> Subscription:
        """Start receiving the messages published on ``channel`` from now on."""
        ...

    async def aclose(self) -> None:
        """Release connections and end every subscription (idempotent)."""
        ...
