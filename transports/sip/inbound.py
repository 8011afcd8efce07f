"""Screening an inbound INVITE before anything is answered, and reading what it said.

The order is the trunk's rules first (403 unknown source, 401 digest challenge), then the
bot's :class:`~transports.sip.contracts.Admission` (486, 503 + Retry-After, ...), then the
SDP offer (488 without PCMU/PCMA; none at all is a delayed offer, answered in the ACK).
A refusal is sent at once and aiosipua forgets the INVITE;
the endpoint keeps the refusal's transaction (:mod:`transports.sip.refusals`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiosipua import IncomingCall, SipRequest, SipResponse, SipUAS
from loguru import logger

from transports.sip.config import uri_user
from transports.sip.contracts import Admission, InviteInfo
from transports.sip.offer_answer import NoCommonCodec, read_media
from transports.sip.trunks import TrunkPolicy


@dataclass(frozen=True)
class Rejection:
    """The final response an INVITE gets instead of 200.

    Parameters:
        status: The SIP status.
        reason: The reason phrase.
        headers: Extra headers (WWW-Authenticate, Retry-After).
    """

    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)


def x_headers(request: SipRequest) -> dict[str, str]:
    """The request's ``X-`` headers, lower-cased names, first values."""
    return {
        name.lower(): values[0]
        for name, values in request.headers.items()
        if name.lower().startswith("x-") and values
    }


def invite_info(incoming: IncomingCall) -> InviteInfo:
    """What the INVITE said (caller and callee are caller data: never log them)."""
    request = incoming.invite
    to = request.to_addr
    return InviteInfo(
        call_id=incoming.call_id,
        source=incoming.source_addr,
        caller=uri_user(incoming.caller),
        callee=uri_user(request.uri) or ((to.uri.user or "") if to else ""),
        headers=x_headers(request),
    )


def screen(
    incoming: IncomingCall, info: InviteInfo, policy: TrunkPolicy, admission: Admission
) -> Rejection | None:
    """None when the INVITE is to be answered; else how it is refused."""
    verdict = policy.check(incoming.invite, incoming.source_addr)
    if verdict == "forbidden":
        return Rejection(403, "Forbidden")
    if verdict == "challenge":
        challenge = policy.challenge_header(incoming.source_addr)
        return Rejection(401, "Unauthorized", {"WWW-Authenticate": challenge})
    try:
        refusal = admission(info)
    except Exception:
        logger.bind(provider_call_id=info.call_id).exception("sip: admission failed")
        return Rejection(503, "Service Unavailable")
    if refusal is not None:
        retry = refusal.retry_after_s
        return Rejection(
            refusal.status, refusal.reason, {"Retry-After": str(retry)} if retry is not None else {}
        )
    if incoming.sdp_offer is None:
        if incoming.invite.body:  # a body that is not SDP (multipart, ...)
            return Rejection(488, "Not Acceptable Here (no SDP offer)")
        return None  # a delayed offer: we offer in the 200, the ACK answers
    try:
        read_media(incoming.sdp_offer)
    except NoCommonCodec:
        return Rejection(488, "Not Acceptable Here")
    return None


def refuse(uas: SipUAS, incoming: IncomingCall, rejection: Rejection) -> SipResponse | None:
    """Send the final response and make aiosipua forget the INVITE; returns the response."""
    response = incoming._send_response(
        rejection.status, rejection.reason, extra_headers=rejection.headers or None
    )
    incoming.dialog.terminate()
    uas._calls.pop(incoming.call_id, None)
    uas._remove_invite_transaction(incoming.invite)
    logger.bind(provider_call_id=incoming.call_id).info("sip: INVITE refused {}", rejection.status)
    return response


def info_key(request: SipRequest) -> str | None:
    """The key in a SIP INFO (``application/dtmf-relay`` ``Signal=5``, or ``application/dtmf``)."""
    kind = (request.content_type or "").split(";")[0].strip().lower()
    text = request.text.strip()
    if kind == "application/dtmf-relay":
        for line in text.splitlines():
            name, _, value = line.partition("=")
            if name.strip().lower() == "signal":
                return value.strip()
    elif kind == "application/dtmf":
        return text
    return None
