"""Delayed offer (RFC 3261 §13.2.1, RFC 3264): an INVITE without SDP, answered in the ACK.

Some PBXs send an INVITE with no body; the UAS then offers in its 200 OK and the caller's
answer arrives in the ACK. Here the RTP port is taken when the INVITE is accepted, the 200
carries our offer (PCMU, PCMA, telephone-event, 20 ms), and the call (its media, its
handler) starts when the ACK's answer is read. An ACK whose answer has no PCMU/PCMA (or no
SDP at all) ends the dialog with a BYE: the 488 of a call that was already answered.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortp import PortAllocator
from aiosipua import IncomingCall, SipRequest, parse_sdp
from aiosipua.dialog import dialog_matches
from loguru import logger

from transports.sip.contracts import InviteInfo
from transports.sip.offer_answer import MediaChoice, NoCommonCodec, SdpVersions, read_media
from transports.sip.offer_answer import build_offer as _build_offer


@dataclass
class AwaitingAnswer:
    """An INVITE answered with our offer, waiting for the ACK's answer.

    Parameters:
        incoming: The INVITE (its dialog is confirmed by the 200).
        info: What the INVITE said.
        port: The RTP port our offer named (allocated, released on failure).
        versions: The dialog's ``o=`` line counter.
    """

    incoming: IncomingCall
    info: InviteInfo
    port: int
    versions: SdpVersions


class DelayedOffers:
    """The offerless INVITEs answered with our offer, by Call-ID.

    Args:
        allocator: The endpoint's RTP port range.
        sdp_ip: The address our SDP names.
    """

    def __init__(self, allocator: PortAllocator, sdp_ip: str) -> None:
        self._allocator = allocator
        self._sdp_ip = sdp_ip
        self._waiting: dict[str, AwaitingAnswer] = {}

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._waiting

    def get(self, call_id: str) -> IncomingCall | None:
        """The INVITE of a waiting call."""
        waiting = self._waiting.get(call_id)
        return waiting.incoming if waiting is not None else None

    async def reserve_port(self) -> int:
        """An RTP port for the offer (raises ``RuntimeError`` when the range is used up)."""
        return (await self._allocator.allocate())[0]

    def offer(self, incoming: IncomingCall, info: InviteInfo, port: int) -> None:
        """Send the 200 OK carrying our offer and wait for the ACK."""
        versions = SdpVersions()
        incoming.accept(_build_offer(ip=self._sdp_ip, port=port, versions=versions))
        self._waiting[incoming.call_id] = AwaitingAnswer(incoming, info, port, versions)
        logger.bind(provider_call_id=incoming.call_id).info("sip: delayed offer; 200 sent")

    def take(self, request: SipRequest) -> AwaitingAnswer | None:
        """The call ``request`` (an ACK) completes, removed from the waiting ones; else None."""
        if request.method.upper() != "ACK":
            return None
        waiting = self._waiting.get(request.call_id or "")
        if waiting is None or not dialog_matches(waiting.incoming.dialog, request):
            return None
        sent, acked = waiting.incoming.invite.cseq, request.cseq
        if sent is None or acked is None or sent.seq != acked.seq:
            return None
        return self._waiting.pop(waiting.incoming.call_id)

    async def drop(self, call_id: str) -> None:
        """Forget a waiting call (no ACK, or shutdown) and release its port."""
        waiting = self._waiting.pop(call_id, None)
        if waiting is not None:
            await self._allocator.release(waiting.port)

    async def close(self) -> None:
        """Forget every waiting call."""
        for call_id in list(self._waiting):
            await self.drop(call_id)


def answer_in_ack(ack: SipRequest) -> MediaChoice:
    """The codec and the peer's RTP from the ACK's SDP answer.

    Raises:
        NoCommonCodec: No SDP, or none of PCMU/PCMA.
    """
    kind = (ack.content_type or "").split(";")[0].strip().lower()
    if not ack.body or kind != "application/sdp":
        raise NoCommonCodec("the ACK has no SDP answer")
    try:
        sdp = parse_sdp(ack.text)
    except Exception:
        raise NoCommonCodec("the ACK's SDP does not parse") from None
    return read_media(sdp)
