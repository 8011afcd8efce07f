"""Dialling an attempt over the SIP trunk, from any process: ask the server that holds it.

The SIP endpoint (its UDP socket, its dialogs and RTP) lives in one server process
(``callagent serve``), while a campaign's attempts are dialled by whichever process runs
the job queue's task (the server's own consumer, or a ``callagent worker`` on another
host). :class:`SipDialer` is the campaign side: it POSTs the attempt's signed token to the
server's internal route ``POST /sip/dial`` (:mod:`bot.web.sip_dial_routes`), which sends the
INVITE, runs the answered call's pipeline and ends the attempt as the SIP answer says
(:func:`sip_disposition`). The token (``bot/outbound/tokens.py``) is the request's
authentication: it names one attempt and is signed with the deployment's secret, so
nobody without the secret can make the server dial, and an attempt is dialled once.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from bot.outbound.dialer import DialError, Dialled
from bot.outbound.tokens import AttemptTokens
from integrations.outbound.dispositions import Disposition
from integrations.outbound.store import Attempt

SIP_DIAL_PATH = "/sip/dial"
"""The server's internal route that places an attempt's INVITE."""
DIAL_REQUEST_TIMEOUT_S = 15.0
"""The route answers as soon as the INVITE is on its way (the ringing is not waited for)."""

BUSY_STATUSES = frozenset({486, 600})
NO_ANSWER_STATUSES = frozenset({408, 480, 487})
RETRYABLE_STATUSES = frozenset({500, 503, 504})
"""Final SIP responses after which the same number may well answer later."""


@dataclass(frozen=True)
class SipEnd:
    """What an INVITE's final (non-2xx) response means for the attempt.

    Parameters:
        disposition: ``busy``, ``no-answer`` or ``failed``.
        retryable: For ``failed``: trying again later may work (a 503 from the trunk).
    """

    disposition: Disposition
    retryable: bool = False


def sip_disposition(status: int) -> SipEnd:
    """The attempt's end for an INVITE's final response (the status callback's equivalent).

    486 Busy Here / 600 Busy Everywhere -> busy; 408 Request Timeout (nobody answered in the
    ringing time), 480 Temporarily Unavailable and 487 Request Terminated (we cancelled at
    the ring time) -> no-answer; 503 / 500 / 504 -> failed, retryable; everything else
    (404 Not Found, 484 Address Incomplete, 603 Decline, 604 Does Not Exist Anywhere, a
    401/407 we could not answer, ...) -> failed.
    """
    if status in BUSY_STATUSES:
        return SipEnd(Disposition.BUSY)
    if status in NO_ANSWER_STATUSES:
        return SipEnd(Disposition.NO_ANSWER)
    return SipEnd(Disposition.FAILED, retryable=status in RETRYABLE_STATUSES)


def sip_failure_retryable(channel: str, error_code: int | None) -> bool:
    """Whether an ended attempt's failure may be retried (the campaign's retry rules).

    A failure without a code (the dialler was lost) always may; a SIP attempt's code is
    the INVITE's final status, retryable as :func:`sip_disposition` says. Twilio's error
    codes were retried already where that could help, so they are final.
    """
    if error_code is None:
        return True
    return channel == "sip" and error_code in RETRYABLE_STATUSES


class SipDialer:
    """Places an attempt through the server holding the SIP endpoint (see the module).

    Args:
        tokens: The attempt tokens, signed with the secret the server verifies with.
        server_url: The base URL of the server process that holds the SIP endpoint.
        transport: An httpx transport (tests: an ASGI app); None: the network.
    """

    def __init__(
        self,
        tokens: AttemptTokens,
        server_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._tokens = tokens
        self._server_url = server_url.rstrip("/")
        self._transport = transport

    async def dial(self, attempt: Attempt, public_url: str) -> Dialled:
        """Ask the server to send the INVITE; ``public_url`` is not used (no callbacks).

        Raises:
            DialError: The server refused (its HTTP status as the code; 503 and 429 are
                retryable: full, draining or no SIP endpoint yet) or could not be reached
                (retryable, no code).
        """
        body = {"attempt": self._tokens.issue(attempt.id)}
        try:
            async with httpx.AsyncClient(
                base_url=self._server_url,
                transport=self._transport,
                timeout=DIAL_REQUEST_TIMEOUT_S,
            ) as client:
                response = await client.post(SIP_DIAL_PATH, json=body)
        except httpx.HTTPError as e:
            raise DialError(
                f"the SIP dial server could not be reached ({type(e).__name__})", retryable=True
            ) from e
        if response.status_code != 202:
            detail = _detail(response)
            raise DialError(
                f"the server refused the SIP dial (HTTP {response.status_code}: {detail})",
                response.status_code,
                retryable=response.status_code in (429, 503),
            )
        dial_id = _field(response, "provider_call_id")
        if not dial_id:
            raise DialError("the SIP dial server's answer names no call", retryable=True)
        return Dialled(dial_id)


def _detail(response: httpx.Response) -> str:
    return _field(response, "detail")[:200] or "no detail"


def _field(response: httpx.Response, name: str) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    value = body.get(name) if isinstance(body, dict) else None  # pyright: ignore[reportUnknownMemberType]
    return value if isinstance(value, str) else ""
