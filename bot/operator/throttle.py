"""Failed operator logins, counted per client address, with an exponential lock-out.

A client that fails ``limit`` times within ``window_s`` (a wrong bearer token, a wrong
token in the login form, a used or expired login link) is locked out for ``lockout_s``;
each further lock-out doubles it (up to ``max_lockout_s``). While locked out every
attempt is refused, the right token included, so guessing gains nothing. A success
clears the client's record.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Client:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    lockouts: int = 0
    last_lockout: float = 0.0


class FailureThrottle:
    """Failed attempts per client key and the lock-outs they earn."""

    def __init__(
        self,
        *,
        limit: int = 5,
        window_s: float = 60.0,
        lockout_s: float = 60.0,
        max_lockout_s: float = 3600.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        """Lock a client out after ``limit`` failures within ``window_s``.

        Args:
            limit: Failures allowed within the window.
            window_s: The window (seconds).
            lockout_s: The first lock-out; each next one (before a success or a quiet
                ``max_lockout_s``) is twice the previous.
            max_lockout_s: The longest lock-out.
            max_clients: Clients remembered (the least recently seen are forgotten).
            clock: Monotonic seconds (tests pass a fake).
        """
        self._limit = limit
        self._window_s = window_s
        self._lockout_s = lockout_s
        self._max_lockout_s = max_lockout_s
        self._max_clients = max_clients
        self._clock = clock
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    def locked_for(self, key: str) -> float:
        """Seconds ``key`` stays locked out (0 when it may try)."""
        client = self._clients.get(key)
        if client is None:
            return 0.0
        return max(0.0, client.locked_until - self._clock())

    def failed(self, key: str) -> float:
        """Count a failure of ``key``; the lock-out it starts, in seconds (0: none)."""
        now = self._clock()
        client = self._clients.pop(key, None) or _Client()
        self._clients[key] = client  # most recently seen last
        while len(self._clients) > self._max_clients:
            self._clients.popitem(last=False)
        if now - client.last_lockout > self._max_lockout_s:
            client.lockouts = 0  # quiet for long enough: start again from the first step
        client.failures.append(now)
        while client.failures and now - client.failures[0] > self._window_s:
            client.failures.popleft()
        if len(client.failures) < self._limit:
            return 0.0
        lockout = min(self._lockout_s * 2**client.lockouts, self._max_lockout_s)
        client.lockouts += 1
        client.last_lockout = now
        client.locked_until = now + lockout
        client.failures.clear()
        return lockout

    def failures(self, key: str) -> int:
        """Failures of ``key`` in the current window."""
        client = self._clients.get(key)
        return 0 if client is None else len(client.failures)

    def succeeded(self, key: str) -> None:
        """Forget ``key``'s failures and lock-outs."""
        self._clients.pop(key, None)
