"""How an attempt is dialled: a strategy per channel (Twilio's REST API, the browser page)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.outbound.tokens import AttemptTokens
from integrations.outbound.store import Attempt
from integrations.twilio_rest import TwilioCallControl, TwilioRestError


@dataclass(frozen=True)
class Dialled:
    """What a dialer did.

    Parameters:
        provider_call_id: The provider's id of the call (Twilio ``CallSid``; ``ring-...``
            for the browser).
        ring_url: Where a person answers the call (browser only).
    """

    provider_call_id: str
    ring_url: str | None = None


class DialError(Exception):
    """The provider refused a dial, or could not be reached.

    Parameters:
        message: What went wrong (no phone number).
        code: The provider's error code (Twilio's), if any.
        retryable: Whether trying again later may work (a campaign's retry rules then apply).
    """

    def __init__(self, message: str, code: int | None = None, *, retryable: bool = False):
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class Dialer(Protocol):
    """Places a claimed attempt."""

    async def dial(self, attempt: Attempt, public_url: str) -> Dialled:
        """Place ``attempt``; ``public_url`` is where the provider reaches this server.

        Raises:
            DialError: The provider refused or could not be reached.
        """
        ...


@dataclass(frozen=True)
class TwilioDialPlan:
    """The fixed parts of every Twilio dial (from settings).

    Parameters:
        from_number: Our caller id.
        ring_secs: Twilio's ``Timeout``.
        machine_detection: ``DetectMessageEnd``, ``Enable`` or ``off``.
    """

    from_number: str
    ring_secs: int = 30
    machine_detection: str = "DetectMessageEnd"


class TwilioDialer:
    """Places the call with Twilio's ``calls.create``: the answer URL is our own voice webhook.

    The answer, status and AMD callback URLs each carry the attempt's signed token
    (``?attempt=``); Twilio signs the whole URL, so the webhooks' signature check covers it.
    """

    def __init__(self, rest: TwilioCallControl, tokens: AttemptTokens, plan: TwilioDialPlan):
        self._rest = rest
        self._tokens = tokens
        self._plan = plan

    async def dial(self, attempt: Attempt, public_url: str) -> Dialled:
        """Create the call (retryable failures retried; the rest raise ``DialError``)."""
        base = public_url.rstrip("/")
        query = f"?attempt={self._tokens.issue(attempt.id)}"
        detect = self._plan.machine_detection
        try:
            call_sid = await self._rest.create_call(
                attempt.to,
                self._plan.from_number,
                f"{base}/twilio/voice{query}",
                f"{base}/twilio/call-status{query}",
                machine_detection=None if detect == "off" else detect,
                async_amd_callback=None if detect == "off" else f"{base}/twilio/amd-status{query}",
                timeout=self._plan.ring_secs,
            )
        except TwilioRestError as e:
            raise DialError(str(e), e.code, retryable=e.retryable) from e
        return Dialled(call_sid)
