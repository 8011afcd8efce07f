"""Twilio's REST API for live calls, through the official ``twilio`` package.

Places outbound calls and redirects a live call to new TwiML (the warm transfer), with the
API root configurable so tests can point it at a local fake. Uses the package's asyncio HTTP
client; errors become :class:`TwilioRestError` carrying Twilio's status and error code, never
call data. Only retryable failures (network, 429, 5xx) are tried again. Twilio has no
idempotency key for calls and a create whose answer was lost may have placed the call, so a
retried create first lists the calls to that number and adopts one an earlier attempt placed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from loguru import logger
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client
from twilio.rest.api.v2010.account import AccountContext

from integrations.retry import RETRY_STATUSES, RetryPolicy

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.twilio.com"
CLOCK_SKEW = timedelta(seconds=30)
"""How far Twilio's clock (a call's ``date_created``) may be behind ours when a retried
create looks for the call an earlier attempt placed."""


class TwilioRestError(Exception):
    """A Twilio REST request failed.

    Parameters:
        status: The HTTP status (None for network errors).
        code: Twilio's error code, if it sent one.
        retryable: Whether another attempt may succeed (no answer, 429 or 5xx).
    """

    def __init__(self, message: str, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.retryable = status is None or status in RETRY_STATUSES


class TwilioCallControl:
    """Live-call operations on one Twilio account."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 5.0,
        attempts: int = 3,
    ):
        """Create the REST client.

        Args:
            account_sid: The account (``AC...``).
            auth_token: Its auth token.
            base_url: API root (``https://api.twilio.com`` or a local fake).
            timeout_s: Request timeout, per attempt.
            attempts: Tries of each request, the first included (network errors, 429, 5xx).
        """
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        # A redirect to the same TwiML is idempotent, so a lost or failed request is retried.
        self._retry = RetryPolicy(attempts=attempts, timeout_s=timeout_s, backoff_s=0.2)

    async def redirect(self, call_sid: str, twiml: str) -> str:
        """Replace the live call's instructions with ``twiml`` (ends its media stream).

        Returns:
            The call's status as Twilio reports it after the update.

        Raises:
            TwilioRestError: Twilio refused (e.g. 21220 call not in progress) or was unreachable
                on every attempt.
        """
        return await self._retry.call(
            lambda _attempt: self._redirect_once(call_sid, twiml), what="Twilio call update"
        )

    async def create_call(
        self,
        to: str,
        from_: str,
        url: str,
        status_callback: str,
        *,
        machine_detection: str | None = None,
        async_amd_callback: str | None = None,
        timeout: int = 30,
    ) -> str:
        """Place an outbound call whose answer URL is ``url`` (``POST`` ``Calls.json``).

        Args:
            to: The number called (E.164).
            from_: Our caller id (a Twilio number of the account).
            url: The voice webhook Twilio fetches TwiML from when the callee answers.
            status_callback: Where Twilio posts the call's progress (initiated, ringing,
                answered, completed).
            machine_detection: ``Enable`` or ``DetectMessageEnd`` (None: no detection).
            async_amd_callback: With ``machine_detection``: detect asynchronously and post
                ``AnsweredBy`` here (the call is connected at once).
            timeout: Seconds to let it ring.

        Returns:
            The new call's ``CallSid``.

        Raises:
            TwilioRestError: Twilio refused (e.g. 21211 invalid number: not retried) or was
                unreachable or failing (network, 429, 5xx) on every attempt.
        """
        since = datetime.now(UTC) - CLOCK_SKEW

        async def attempt(number: int) -> str:
            if number > 1:
                # the earlier attempt's answer may have been lost after Twilio placed the call
                # (a timeout, a dropped connection): dialling again would ring the person twice
                placed = await self._placed_since(to, from_, since)
                if placed is not None:
                    logger.warning(
                        f"Twilio call create: attempt {number - 1} had placed the call "
                        f"({placed}); not dialling again"
                    )
                    return placed
            return await self._create_once(
                to, from_, url, status_callback, machine_detection, async_amd_callback, timeout
            )

        return await self._retry.call(attempt, what="Twilio call create")

    async def _placed_since(self, to: str, from_: str, since: datetime) -> str | None:
        """The SID of an outbound call from ``from_`` to ``to`` created since ``since``, if any.

        Raises:
            TwilioRestError: The list could not be read (the create is not tried blind).
        """
        calls = await self._request(
            "call lookup",
            lambda account: account.calls.list_async(to=to, from_=from_, limit=20),
        )
        for call in calls:
            created = call.date_created
            if call.direction == "outbound-api" and created is not None and created >= since:
                return str(call.sid)
        return None

    async def _create_once(
        self,
        to: str,
        from_: str,
        url: str,
        status_callback: str,
        machine_detection: str | None,
        async_amd_callback: str | None,
        timeout: int,
    ) -> str:
        amd: dict[str, object] = {}
        if machine_detection:
            amd["machine_detection"] = machine_detection
            if async_amd_callback:
                amd.update(async_amd="true", async_amd_status_callback=async_amd_callback)
        call = await self._request(
            "call create",
            lambda account: account.calls.create_async(
                to=to,
                from_=from_,
                url=url,
                status_callback=status_callback,
                status_callback_event=["initiated", "ringing", "answered", "completed"],
                timeout=timeout,
                **amd,  # pyright: ignore[reportArgumentType]
            ),
        )
        return str(call.sid)

    async def _request(self, what: str, send: Callable[[AccountContext], Awaitable[T]]) -> T:
        """One REST request on the account, bounded by the timeout; errors as TwilioRestError."""
        # the SDK's own timeout is not applied to its async requests (aiohttp's 5 min default
        # was), so ``asyncio.timeout`` bounds each one
        http = AsyncTwilioHttpClient(timeout=self._retry.timeout_s)
        client = Client(self._account_sid, self._auth_token, http_client=http)
        client.api.base_url = self._base_url
        try:
            async with asyncio.timeout(self._retry.timeout_s):
                return await send(client.api.v2010.accounts(self._account_sid))
        except TwilioRestException as e:
            raise TwilioRestError(f"{what} refused: HTTP {e.status}", e.status, e.code) from e
        except Exception as e:  # aiohttp, socket and twilio client errors alike
            raise TwilioRestError(f"{what} failed: {type(e).__name__}") from e
        finally:
            await http.close()

    async def _redirect_once(self, call_sid: str, twiml: str) -> str:
        call = await self._request(
            "call update", lambda account: account.calls(call_sid).update_async(twiml=twiml)
        )
        return str(call.status)


def transfer_twiml(
    target: str,
    *,
    hold_line: str,
    whisper_url: str | None,
    action_url: str | None,
    hold_music_url: str | None,
    dial_timeout_s: int = 25,
) -> str:
    """TwiML that hands a live call to a person: the hold line, then dial (or queue).

    ``target`` is a phone number (``<Dial><Number>``), a SIP URI (``<Dial><Sip>``) or
    ``queue:NAME`` (``<Enqueue>`` with hold music as its wait URL). ``whisper_url`` is
    fetched when the person answers and played to them alone before the call is bridged;
    the caller hears ringback meanwhile. ``action_url`` gets Twilio's Dial outcome (no
    answer, busy, failed) and decides what the caller hears next.
    """
    from twilio.twiml.voice_response import Dial, Enqueue, VoiceResponse

    response = VoiceResponse()
    if hold_line:
        response.say(hold_line)
    if target.startswith("queue:"):
        enqueue = Enqueue(
            target.removeprefix("queue:"),
            wait_url=hold_music_url,
            wait_url_method="GET",
            action=action_url,
        )
        response.append(enqueue)
        return str(response.to_xml())
    dial = Dial(timeout=dial_timeout_s, action=action_url, ring_tone="us")
    if target.startswith("sip:"):
        dial.sip(target, url=whisper_url)
    else:
        dial.number(target, url=whisper_url)
    response.append(dial)
    return str(response.to_xml())


def say_twiml(*lines: str, hang_up: bool = False) -> str:
    """TwiML that says each line (then hangs up)."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    for line in lines:
        if line:
            response.say(line)
    if hang_up:
        response.hangup()
    return str(response.to_xml())


def reject_twiml(reason: str = "busy") -> str:
    """TwiML that refuses an incoming call unanswered (``busy`` or ``rejected``): no charge."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    response.reject(reason=reason)
    return str(response.to_xml())
