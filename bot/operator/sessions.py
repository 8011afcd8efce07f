"""Operator sessions and one-time login links, kept in the deployment's shared state.

A session id is ``secrets.token_urlsafe(32)``, random at every login; the shared state
(:class:`integrations.shared_state.base.SharedState`, ``Runtime.shared``) keeps only its
SHA-256 under ``callagent:opsession:<digest>``, so a login on one server process is valid
on every other, and logout revokes it everywhere. A session ends at logout, after
``idle_s`` without a request (the key's expiry, pushed back at each request), or
``absolute_s`` after login (kept in the value), whichever comes first. With the embedded
(in-process) state a restart ends them all (operators log in again).

A login link carries a one-time token for a loopback server without an operator token
(the Jupyter way): it is printed in the server's output, works once on any process of the
deployment, and expires.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable

from integrations.shared_state.base import SharedState

SESSION_KEY = "callagent:opsession:"
REVOKED_KEY = "callagent:opsession-revoked:"
LINK_KEY = "callagent:loginlink:"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class OperatorSessions:
    """Live operator sessions: create at login, check per request, revoke at logout.

    Args:
        shared: Where sessions live (every process of the deployment sees them).
        absolute_s: Lifetime from login (seconds).
        idle_s: Lifetime from the last request (seconds).
        clock: Wall-clock seconds (shared by processes; tests pass a fake).
    """

    def __init__(
        self,
        shared: SharedState,
        *,
        absolute_s: float,
        idle_s: float,
        clock: Callable[[], float] = time.time,
    ):
        """Sessions last ``absolute_s`` at most, ``idle_s`` without use."""
        self.absolute_s = absolute_s
        self.idle_s = idle_s
        self._shared = shared
        self._clock = clock

    async def create(self) -> str:
        """Start a session; its id (the cookie value)."""
        session_id = secrets.token_urlsafe(32)
        created = self._clock()
        await self._shared.put(
            SESSION_KEY + _digest(session_id),
            json.dumps({"created": created}),
            ttl_s=min(self.idle_s, self.absolute_s),
        )
        return session_id

    async def valid(self, session_id: str) -> bool:
        """Whether ``session_id`` is live (and mark it used now: its idle time restarts)."""
        if not session_id:
            return False
        key = SESSION_KEY + _digest(session_id)
        value = await self._shared.get(key)
        if value is None:
            return False
        try:
            created = float(json.loads(value)["created"])
        except (ValueError, KeyError, TypeError):
            await self._shared.delete(key)
            return False
        left = created + self.absolute_s - self._clock()
        if left <= 0:
            await self._shared.delete(key)
            return False
        await self._shared.put(key, value, ttl_s=min(self.idle_s, left))
        # a logout on another process between the get and the put above would be undone by
        # the put: logout marks the session revoked before deleting it, so a mark found
        # now means it was; none found means the logout's delete comes after our put
        if await self._shared.get(REVOKED_KEY + _digest(session_id)) is not None:
            await self._shared.delete(key)
            return False
        return True

    async def revoke(self, session_id: str) -> None:
        """End a session (logout), on every process."""
        if not session_id:
            return
        digest = _digest(session_id)
        if await self._shared.get(SESSION_KEY + digest) is None:
            return  # nothing to revoke (and no mark for a made-up cookie)
        await self._shared.put(REVOKED_KEY + digest, "1", ttl_s=self.absolute_s)
        await self._shared.delete(SESSION_KEY + digest)


class LoginLinks:
    """One outstanding one-time login token per process, single use anywhere, expiring.

    Args:
        shared: Where the outstanding tokens' digests live (so a link printed by one
            process opens a session through any other).
        base_url: Links go to ``{base_url}/dashboard/login?token=...``.
        ttl_s: How long a link works.
    """

    def __init__(self, shared: SharedState, base_url: str, *, ttl_s: float = 900.0):
        """Links that expire after ``ttl_s``."""
        self.base_url = base_url.rstrip("/")
        self.ttl_s = ttl_s
        self._shared = shared
        self._own = ""  # the key of the link this process printed last

    async def outstanding(self) -> bool:
        """Whether this process's link is out, unused and not expired."""
        return bool(self._own) and await self._shared.get(self._own) is not None

    async def issue(self) -> str:
        """A new link (this process's earlier one stops working)."""
        token = secrets.token_urlsafe(32)
        if self._own:
            await self._shared.delete(self._own)
        self._own = LINK_KEY + _digest(token)
        await self._shared.put(self._own, "1", ttl_s=self.ttl_s)
        return f"{self.base_url}/dashboard/login?token={token}"

    async def redeem(self, token: str) -> bool:
        """Whether ``token`` is an outstanding link's; it is used up (once, on any process)."""
        if not token:
            return False
        # the delete is the single use: of two processes redeeming it at once, one deletes
        return await self._shared.delete(LINK_KEY + _digest(token))
