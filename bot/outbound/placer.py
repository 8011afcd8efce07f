"""Placing one outbound call: do-not-call check, the attempt written, claimed, dialled."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from loguru import logger

from bot.outbound.attempts import Attempts
from bot.outbound.dialer import Dialer, DialError, Dialled
from integrations.outbound.dispositions import Disposition
from integrations.outbound.store import Attempt


class DoNotCallError(Exception):
    """The number is on the do-not-call list: the call is never placed."""


class PlaceError(Exception):
    """The dial failed; the attempt ended as failed with the provider's ``code``."""

    def __init__(self, message: str, attempt: Attempt, code: int | None) -> None:
        super().__init__(message)
        self.attempt = attempt
        self.code = code


@dataclass(frozen=True)
class CallRequest:
    """One call to place.

    Parameters:
        agent: The agent's key.
        to: The number (E.164; any id for the browser channel). Never logged.
        variables: The script's per-call variables. Never logged.
        channel: ``twilio``, ``sip`` or ``browser``.
    """

    agent: str
    to: str
    variables: Mapping[str, str] = field(default_factory=dict)
    channel: str = "twilio"


@dataclass(frozen=True)
class Placed:
    """A placed call: its attempt (as dialled) and what the dialer said."""

    attempt: Attempt
    dialled: Dialled


class CallPlacer:
    """Places single calls through one dialer per channel.

    Args:
        attempts: The attempts.
        dialers: The dialer of each channel (``twilio``, ``browser``).
    """

    def __init__(self, attempts: Attempts, dialers: Mapping[str, Dialer]) -> None:
        self._attempts = attempts
        self._dialers = dict(dialers)

    async def place(self, request: CallRequest, public_url: str) -> Placed:
        """DNC check, then ``new_attempt``, ``claim_dial``, dial, ``mark_dialed``.

        Raises:
            DoNotCallError: The number is on the do-not-call list (no attempt is written).
            PlaceError: The dial failed (the attempt ended ``failed`` with the error's code).
            OutboundStoreError: ``to`` is not a phone number.
        """
        dialer = self._dialers[request.channel]
        if request.channel != "browser" and await self._attempts.on_dnc_list(request.to):
            raise DoNotCallError("the number is on the do-not-call list")
        attempt = await self._attempts.new(
            agent=request.agent,
            to=request.to,
            variables=request.variables,
            channel=request.channel,
        )
        log = logger.bind(attempt_id=attempt.id)
        if not await self._attempts.claim(attempt.id):  # a fresh attempt: always ours
            raise PlaceError("the attempt was claimed elsewhere", attempt, None)
        try:
            dialled = await dialer.dial(attempt, public_url)
        except DialError as e:
            log.warning(f"outbound dial failed (code {e.code})")
            ended = await self._attempts.finish(
                attempt.id, Disposition.FAILED, error_code=e.code, error=str(e)
            )
            raise PlaceError(str(e), ended or attempt, e.code) from e
        await self._attempts.mark_dialed(attempt.id, dialled.provider_call_id)
        log.info(f"outbound call placed ({request.channel}, {dialled.provider_call_id})")
        current = await self._attempts.get(attempt.id)
        return Placed(current or attempt, dialled)
