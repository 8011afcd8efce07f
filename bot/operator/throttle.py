"""Failed operator logins, counted per client address, with an exponential lock-out.

A client that fails ``limit`` times within ``window_s`` (a wrong bearer token, a wrong
token in the login form, a used or expired login link) is locked out for ``lockout_s``;
each further lock-out doubles it (up to ``max_lockout_s``). While locked out every
attempt is refused, the right token included, so guessing gains nothing. A success
clears the client's record.

The counts live in the deployment's shared state (``Runtime.shared``), so failures on
every server process add up and a lock-out holds on all of them. Three keys per client,
each expiring on its own (``callagent:authfail:<ref>``: failures in the current window,
an atomic counter; ``callagent:authlock:<ref>``: locked until; ``callagent:authsteps:<ref>``:
lock-outs since the client was last quiet for ``max_lockout_s``). ``<ref>`` is a keyed hash
of the address, never the address. The window starts at the first failure (a fixed
window, not a sliding one).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

from integrations.shared_state.base import SharedState

_FAILURES = "callagent:authfail:"
_LOCKED = "callagent:authlock:"
_STEPS = "callagent:authsteps:"
_REF_LABEL = b"callagent/operator-throttle/v1"


class FailureThrottle:
    """Failed attempts per client key and the lock-outs they earn.

    Args:
        shared: Where the counts live (every process of the deployment sees them).
        limit: Failures allowed within the window.
        window_s: The window (seconds).
        lockout_s: The first lock-out; each next one (before a success or a quiet
            ``max_lockout_s``) is twice the previous.
        max_lockout_s: The longest lock-out.
        secret: Keys the hash that names a client in the shared state (the operator
            token; every process must use the same).
        clock: Wall-clock seconds (tests pass a fake).
    """

    def __init__(
        self,
        shared: SharedState,
        *,
        limit: int = 5,
        window_s: float = 60.0,
        lockout_s: float = 60.0,
        max_lockout_s: float = 3600.0,
        secret: str = "",
        clock: Callable[[], float] = time.time,
    ):
        """Lock a client out after ``limit`` failures within ``window_s``."""
        self._shared = shared
        self._limit = limit
        self._window_s = window_s
        self._lockout_s = lockout_s
        self._max_lockout_s = max_lockout_s
        self._secret = hmac.new(secret.encode(), _REF_LABEL, hashlib.sha256).digest()
        self._clock = clock

    def _ref(self, key: str) -> str:
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()[:32]

    async def locked_for(self, key: str) -> float:
        """Seconds ``key`` stays locked out (0 when it may try)."""
        until = await self._shared.get(_LOCKED + self._ref(key))
        if until is None:
            return 0.0
        return max(0.0, float(until) - self._clock())

    async def failed(self, key: str) -> float:
        """Count a failure of ``key``; the lock-out it starts, in seconds (0: none).

        A failure while locked out is not counted (it gets the time left). Of failures
        counted at once on several processes, one starts the lock-out (the counter is
        atomic, and so is taking the lock).
        """
        locked = await self.locked_for(key)
        if locked:
            return locked
        ref = self._ref(key)
        count = await self._shared.add(_FAILURES + ref, 1, ttl_s=self._window_s)
        if count < self._limit:
            return 0.0
        now = self._clock()
        lock = _LOCKED + ref
        if not await self._shared.put(
            lock, repr(now + self._lockout_s), ttl_s=self._lockout_s, only_if_absent=True
        ):
            return await self.locked_for(key)  # another process started it just now
        steps = await self._shared.add(_STEPS + ref, 1, ttl_s=self._max_lockout_s)
        # quiet for max_lockout_s after the last lock-out: start again from the first step
        await self._shared.put(_STEPS + ref, str(steps), ttl_s=self._max_lockout_s)
        lockout = min(self._lockout_s * 2 ** (steps - 1), self._max_lockout_s)
        await self._shared.put(lock, repr(now + lockout), ttl_s=lockout)
        await self._shared.delete(_FAILURES + ref)
        return lockout

    async def failures(self, key: str) -> int:
        """Failures of ``key`` in the current window."""
        count = await self._shared.get(_FAILURES + self._ref(key))
        return 0 if count is None else int(count)

    async def succeeded(self, key: str) -> None:
        """Forget ``key``'s failures and lock-outs."""
        ref = self._ref(key)
        for prefix in (_FAILURES, _STEPS, _LOCKED):
            await self._shared.delete(prefix + ref)
