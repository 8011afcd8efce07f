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
from integrations.shared_state.base import SharedState, SharedStateError


class RingError(ValueError):
    """A ring token that cannot be answered (forged, expired, used, or the ring is over)."""


RING_KEY = "callagent:ring:"
RING_KEY_GRACE_S = 30.0
"""The ring's key outlives its timer by this much (the timer deletes it)."""
RING_PURPOSE = "callagent/outbound-ring/v1"
SECRET_KEY = "callagent:secret:ring"
SECRET_TTL_S = 7 * 86400.0
"""How long a shared ring secret lives; a new one then breaks only the rings ringing."""
TIME_OUT_RETRY_S = 2.0
"""After the shared state failed a ring's time-out, the wait before it tries again."""


class RingTokens:
    """Ring tokens, signed alike on every process of the deployment.

    With a configured secret (the operator token, else the Twilio auth token) every
    process derives the same key. Without one (a loopback server with no tokens) a random
    secret is kept in the shared state (``callagent:secret:ring``), set by the first
    process that needs it, so a ring made by one process verifies on the others.

    Args:
        secret: The configured secret ("" for none).
        shared: The deployment's shared state.
        ttl_s: How long a ring token verifies.
    """

    def __init__(self, secret: str, shared: SharedState, *, ttl_s: float) -> None:
        self._secret = secret
        self._shared = shared
        self._ttl_s = ttl_s
        self._signed: tuple[str, AttemptTokens] | None = None

    async def signer(self) -> AttemptTokens:
        """The tokens for the current secret."""
        secret = self._secret or await self._shared_secret()
        if self._signed is None or self._signed[0] != secret:
            tokens = AttemptTokens(secret, RING_PURPOSE, prefix="ring", ttl_s=self._ttl_s)
            self._signed = (secret, tokens)
        return self._signed[1]

    async def _shared_secret(self) -> str:
        while True:  # set-if-absent then read: every process reads the first one set
            await self._shared.put(
                SECRET_KEY, secrets.token_hex(32), ttl_s=SECRET_TTL_S, only_if_absent=True
            )
            value = await self._shared.get(SECRET_KEY)
            if value is not None:
                return value


class Rings:
    """The deployment's browser rings: each answered or declined once, or timed out.

    Args:
        tokens: Ring tokens (single use across processes).
        attempts: The attempts (a ring not answered in time ends its attempt as no-answer).
        ring_secs: How long a ring waits for an answer.
        shared: Where ringing rings are kept (every process sees them).
    """

    def __init__(
        self, tokens: RingTokens, attempts: Attempts, ring_secs: float, shared: SharedState
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
        return (await self._tokens.signer()).issue(attempt_id)

    async def check(self, token: str) -> str:
        """The attempt a ring token rings for, while it still rings (nothing used up).

        Raises:
            RingError: forged, expired, already answered or declined, or timed out.
        """
        attempt_id = await self.attempt_of(token)
        if await self._shared.get(RING_KEY + attempt_id) is None:
            raise RingError(_OVER)
        return attempt_id

    async def attempt_of(self, token: str) -> str:
        """The attempt a (possibly used) ring token was issued for (raises ``RingError``)."""
        try:
            return (await self._tokens.signer()).verify(token)
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
        """End the attempt as no-answer unless the ring was used up meanwhile.

        The shared state failing here is retried for the ring key's grace: a timer that
        died on the first hiccup would leave the attempt ringing.
        """
        await asyncio.sleep(self._ring_secs)
        log = logger.bind(attempt_id=attempt_id)
        for _ in range(max(1, int(RING_KEY_GRACE_S / TIME_OUT_RETRY_S))):
            try:
                if not await self._shared.delete(RING_KEY + attempt_id):
                    return  # answered or declined, here or elsewhere
                break
            except SharedStateError as e:
                log.warning(f"browser ring time-out not recorded ({e}); trying again")
                await asyncio.sleep(TIME_OUT_RETRY_S)
        else:  # whether it was answered cannot be told: the reconcile settles the attempt
            log.warning("browser ring time-out given up: the shared state stayed unreachable")
            return
        log.info("browser ring not answered in time")
        await self._attempts.finish(attempt_id, Disposition.NO_ANSWER)

    async def close(self) -> None:
        """Stop this process's ring timers (server shutdown) and wait until they have."""
        timers = list(self._timers.values())
        for task in timers:
            task.cancel()
        self._timers.clear()
        await asyncio.gather(*timers, return_exceptions=True)


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
