"""The browser page "receives" an outbound call: a single-use ring link, answered or not.

:class:`BrowserDialer` dials an attempt by making it ring: it returns ``/#ring=<token>``
(``&from=<agent name>``), and the page shows "Incoming call from <agent>" with Answer and
Decline. Answer posts a WebRTC offer carrying the ring token (``request_data.ring``), which
:meth:`Rings.answer` uses up; Decline (:meth:`Rings.decline`) or no answer within the ring
time ends the attempt as no-answer. A ring lives in the process that made it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from urllib.parse import quote

from loguru import logger

from bot.outbound.attempts import Attempts
from bot.outbound.dialer import Dialled
from bot.outbound.tokens import AttemptTokenError, AttemptTokens
from integrations.outbound.dispositions import Disposition
from integrations.outbound.store import Attempt


class RingError(ValueError):
    """A ring token that cannot be answered (forged, expired, used, or the ring is over)."""


class Rings:
    """The browser rings of this process: each answered or declined once, or timed out.

    Args:
        tokens: Ring tokens (single use here).
        attempts: The attempts (a ring not answered in time ends its attempt as no-answer).
        ring_secs: How long a ring waits for an answer.
    """

    def __init__(self, tokens: AttemptTokens, attempts: Attempts, ring_secs: float) -> None:
        self._tokens = tokens
        self._attempts = attempts
        self._ring_secs = ring_secs
        self._ringing: dict[str, asyncio.Task[None]] = {}

    def start(self, attempt_id: str) -> str:
        """Ring for ``attempt_id``; returns the single-use ring token."""
        task = asyncio.create_task(self._time_out(attempt_id), name=f"ring-{attempt_id}")
        self._ringing[attempt_id] = task
        return self._tokens.issue(attempt_id)

    def check(self, token: str) -> str:
        """The attempt a ring token rings for, while it still rings (nothing used up).

        Raises:
            RingError: forged, expired, already answered or declined, or timed out.
        """
        try:
            attempt_id = self._tokens.verify(token)
        except AttemptTokenError as e:
            raise RingError(f"the ring token is not valid ({e})") from None
        if attempt_id not in self._ringing:
            raise RingError("this call is no longer ringing (answered, declined or timed out)")
        return attempt_id

    def attempt_of(self, token: str) -> str:
        """The attempt a (possibly used) ring token was issued for (raises ``RingError``)."""
        try:
            return self._tokens.verify(token)
        except AttemptTokenError as e:
            raise RingError(f"the ring token is not valid ({e})") from None

    def answer(self, token: str) -> str:
        """Use the ring up by answering; returns its attempt id (raises ``RingError``)."""
        attempt_id = self.check(token)
        self._ringing.pop(attempt_id).cancel()
        return attempt_id

    async def decline(self, token: str) -> Attempt | None:
        """Use the ring up by declining: the attempt ends as no-answer."""
        attempt_id = self.answer(token)
        return await self._attempts.finish(attempt_id, Disposition.NO_ANSWER)

    async def _time_out(self, attempt_id: str) -> None:
        await asyncio.sleep(self._ring_secs)
        if self._ringing.pop(attempt_id, None) is not None:
            logger.bind(attempt_id=attempt_id).info("browser ring not answered in time")
            await self._attempts.finish(attempt_id, Disposition.NO_ANSWER)

    async def close(self) -> None:
        """Stop every ring timer (server shutdown)."""
        for task in self._ringing.values():
            task.cancel()
        self._ringing.clear()


class BrowserDialer:
    """Dials an attempt by ringing the browser page (see the module)."""

    def __init__(self, rings: Rings, agent_name: Callable[[str], str]) -> None:
        """Ring through ``rings``; ``agent_name`` gives an agent key's display name."""
        self._rings = rings
        self._agent_name = agent_name

    async def dial(self, attempt: Attempt, public_url: str) -> Dialled:
        """Start the ring; the page's link is relative to the server."""
        token = self._rings.start(attempt.id)
        name = self._agent_name(attempt.agent)
        return Dialled(
            f"ring-{secrets.token_hex(8)}", ring_url=f"/#ring={token}&from={quote(name)}"
        )
