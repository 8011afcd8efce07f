"""Answering a re-INVITE on a live call: hold, unhold, a moved peer, an offerless refresh.

The answer mirrors the offer's direction (sendonly -> recvonly, inactive -> inactive; an
old-style 0.0.0.0 offer is a hold too), keeps the call's codec (488 if the offer drops it,
and the call goes on), and carries the dialog's ``o=`` session with the next version.
"""

from __future__ import annotations

from aiosipua import IncomingCall
from loguru import logger

from transports.sip.media import RtpMedia
from transports.sip.offer_answer import (
    NoCommonCodec,
    SdpVersions,
    build_answer,
    build_offer,
    read_media,
)


def answer_reinvite(
    incoming: IncomingCall, media: RtpMedia, versions: SdpVersions, sdp_ip: str
) -> None:
    """Answer ``incoming`` (a re-INVITE) and put ``media`` on or off hold accordingly."""
    log = logger.bind(provider_call_id=incoming.call_id)
    if not incoming.invite.body:
        # An offerless re-INVITE: offer what we have (the ACK's answer changes nothing)
        incoming.accept(build_offer(ip=sdp_ip, port=media.port, versions=versions))
        media.set_held(False)
        return
    offer = incoming.sdp_offer
    try:
        if offer is None:
            raise NoCommonCodec("no SDP")
        choice = read_media(offer, allowed=(media.payload_type,))
    except NoCommonCodec:
        incoming._send_response(488, "Not Acceptable Here")
        log.info("sip: re-INVITE refused 488")
        return
    answer = build_answer(offer, ip=sdp_ip, port=media.port, choice=choice, versions=versions)
    media.update_peer(choice.remote)
    media.set_held(choice.held)
    incoming.accept(answer)
    log.info("sip: re-INVITE answered (held={})", choice.held)
