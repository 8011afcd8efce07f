"""The browser page "receives" an outbound call: a single-use ring link, answered or not.

:class:`BrowserDialer` dials an attempt by making it ring: it returns ``/#ring=<token>``
(``&from=<agent name>``), and the page shows "Incoming call from <agent>" with Answer and
Decline. Answer posts a WebRTC offer carrying the ring token (``request_data.ring``), which
:meth:`Rings.answer` uses up; Decline (:meth:`Rings.decline`) or no answer within the ring
time ends the attempt as no-answer.

Whether a ring still rings is a key in the deployment's shared state
(``callagent:ring:<attempt id>``, ``Runtime.shared``), so the page's answer or decline may
reach any server process: deleting the key is the single use (of an answer, a decline and
the time-out racing on several processes exactly one deletes it). The ring's timer runs in
the process that made the ring; if that process dies the key expires and the attempt is
left to the crash recovery.
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
from integrations.shared_state.base import SharedState


class RingError(ValueError):
    """A ring token that cannot be answered (forged, expired, used, or the ring is over)."""


RING_KEY = "callagent:ring:"
RING_KEY_GRACE_S = 30.0
"""The ring's key outlives its timer by this much (the timer deletes it)."""


class Rings:
    """The deployment's browser rings: each answered or declined once, or timed out.

    Args:
        tokens: Ring tokens (single use across processes).
        attempts: The attempts (a ring not answered in time ends its attempt as no-answer).
        ring_secs: How long a ring waits for an answer.
        shared: Where ringing rings are kept (every process sees them).
    """

    def __init__(
        self, tokens: AttemptTokens, attempts: Attempts, ring_secs: float, shared: SharedState
    ) -> None:
        self._tokens = tokens
        self._attempts = attempts
        self._ring_secs = ring_secs
        self._shared = shared
        self._timers: dict[str, asyncio.Task[None]] = {}  # this process's rings' timers

    async def start(self, attempt_id: str) -> str:
        """Ring for ``attempt_id``; returns the single-use ring token."""
        await self._shared.put(
            RING_KEY + attempt_id, "ringing", ttl_s=self._ring_secs + RING_KEY_GRACE_S
        )
        task = asyncio.create_task(self._time_out(attempt_id), name=f"ring-{attempt_id}")
        self._timers[attempt_id] = task
        task.add_done_callback(lambda _t: self._timers.pop(attempt_id, None))
        return self._tokens.issue(attempt_id)

    async def check(self, token: str) -> str:
        """The attempt a ring token rings for, while it still rings (nothing used up).

        Raises:
            RingError: forged, expired, already answered or declined, or timed out.
        """
        try:
            attempt_id = self._tokens.verify(token)
        except AttemptTokenError as e:
            raise RingError(f"the ring token is not valid ({e})") from None
        if await self._shared.get(RING_KEY + attempt_id) is None:
            raise RingError(_OVER)
        return attempt_id

    def attempt_of(self, token: str) -> str:
        """The attempt a (possibly used) ring token was issued for (raises ``RingError``)."""
        try:
            return self._tokens.verify(token)
        except AttemptTokenError as e:
            raise RingError(f"the ring token is not valid ({e})") from None

    async def answer(self, token: str) -> str:
        """Use the ring up by answering; returns its attempt id (raises ``RingError``)."""
        attempt_id = await self.check(token)
        if not await self._shared.delete(RING_KEY + attempt_id):
            raise RingError(_OVER)  # answered, declined or timed out meanwhile elsewhere
        timer = self._timers.pop(attempt_id, None)
        if timer is not None:
            timer.cancel()
        return attempt_id

    async def decline(self, token: str) -> Attempt | None:
        """Use the ring up by declining: the attempt ends as no-answer."""
        attempt_id = await self.answer(token)
        return await self._attempts.finish(attempt_id, Disposition.NO_ANSWER)

    async def _time_out(self, attempt_id: str) -> None:
        await asyncio.sleep(self._ring_secs)
        if await self._shared.delete(RING_KEY + attempt_id):  # not answered anywhere
            logger.bind(attempt_id=attempt_id).info("browser ring not answered in time")
            await self._attempts.finish(attempt_id, Disposition.NO_ANSWER)

    async def close(self) -> None:
        """Stop this process's ring timers (server shutdown)."""
        for task in list(self._timers.values()):
            task.cancel()
        self._timers.clear()


_OVER = "this call is no longer ringing (answered, declined or timed out)"


class BrowserDialer:
    """Dials an attempt by ringing the browser page (see the module)."""

    def __init__(self, rings: Rings, agent_name: Callable[[str], str]) -> None:
        """Ring through ``rings``; ``agent_name`` gives an agent key's display name."""
        self._rings = rings
        self._agent_name = agent_name

    async def dial(self, attempt: Attempt, public_url: str) -> Dialled:
        """Start the ring; the page's link is relative to the server."""
        token = await self._rings.start(attempt.id)
        name = self._agent_name(attempt.agent)
        return Dialled(
            f"ring-{secrets.token_hex(8)}", ring_url=f"/#ring={token}&from={quote(name)}"
        )
