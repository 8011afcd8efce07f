"""Operator sessions and one-time login links, kept in the server process's memory.

A session id is ``secrets.token_urlsafe(32)``, random at every login; the store keeps
only its SHA-256, so the dict lookup leaks nothing about live ids. A session ends at
logout, after ``idle_s`` without a request, or ``absolute_s`` after login, whichever
comes first; a restart ends them all (operators log in again).

A login link carries a one-time token for a loopback server without an operator token
(the Jupyter way): it is printed in the server's output, works once, and expires.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class _Session:
    created: float
    seen: float


class OperatorSessions:
    """Live operator sessions: create at login, check per request, revoke at logout."""

    def __init__(
        self,
        *,
        absolute_s: float,
        idle_s: float,
        max_sessions: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ):
        """Sessions last ``absolute_s`` at most, ``idle_s`` without use.

        Args:
            absolute_s: Lifetime from login (seconds).
            idle_s: Lifetime from the last request (seconds).
            max_sessions: Live sessions kept (the oldest goes first beyond it).
            clock: Monotonic seconds (tests pass a fake).
        """
        self.absolute_s = absolute_s
        self.idle_s = idle_s
        self._max_sessions = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    def create(self) -> str:
        """Start a session; its id (the cookie value)."""
        self._expire()
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        self._sessions[_digest(session_id)] = _Session(created=now, seen=now)
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)
        return session_id

    def valid(self, session_id: str) -> bool:
        """Whether ``session_id`` is live (and mark it used now)."""
        if not session_id:
            return False
        key = _digest(session_id)
        session = self._sessions.get(key)
        if session is None:
            return False
        now = self._clock()
        if self._expired(session, now):
            del self._sessions[key]
            return False
        session.seen = now
        return True

    def revoke(self, session_id: str) -> None:
        """End a session (logout)."""
        self._sessions.pop(_digest(session_id), None)

    def _expired(self, session: _Session, now: float) -> bool:
        return now - session.created > self.absolute_s or now - session.seen > self.idle_s

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[key]


class LoginLinks:
    """One outstanding one-time login token at a time, single use, expiring."""

    def __init__(
        self, base_url: str, *, ttl_s: float = 900.0, clock: Callable[[], float] = time.monotonic
    ):
        """Links to ``{base_url}/dashboard/login?token=...`` that expire after ``ttl_s``."""
        self.base_url = base_url.rstrip("/")
        self.ttl_s = ttl_s
        self._clock = clock
        self._token_digest = ""
        self._expires = 0.0

    @property
    def outstanding(self) -> bool:
        """Whether a link is out, unused and not expired."""
        return bool(self._token_digest) and self._clock() < self._expires

    def issue(self) -> str:
        """A new link (any earlier one stops working)."""
        token = secrets.token_urlsafe(32)
        self._token_digest = _digest(token)
        self._expires = self._clock() + self.ttl_s
        return f"{self.base_url}/dashboard/login?token={token}"

    def redeem(self, token: str) -> bool:
        """Whether ``token`` is the outstanding link's; it is used up either way it matched."""
        if not token or not self.outstanding:
            return False
        if not hmac.compare_digest(_digest(token), self._token_digest):
            return False
        self._token_digest = ""
        return True
