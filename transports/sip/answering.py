"""Answering a new inbound INVITE: screening, refusal transactions, offer/answer, delayed offer.

:func:`~transports.sip.inbound.screen` decides (403, 401, admission's 486/503, 488); a refusal
is kept as a server transaction (:mod:`transports.sip.refusals`); an INVITE with an offer is
answered in the 200 once its RTP port is bound; an INVITE without one gets our offer in the
200 and starts when the ACK answers (:mod:`transports.sip.delayed_offer`). The answered call
is handed to ``start_call`` (the endpoint's), media bound and the codec chosen.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from aiortp import PortAllocator
from aiosipua import IncomingCall, SipRequest
from loguru import logger

from transports.sip.config import SipEndpointConfig
from transports.sip.contracts import Admission, InviteInfo
from transports.sip.delayed_offer import AwaitingAnswer, DelayedOffers, answer_in_ack
from transports.sip.inbound import Rejection, invite_info, refuse, screen
from transports.sip.media import RtpMedia
from transports.sip.offer_answer import (
    MediaChoice,
    NoCommonCodec,
    SdpVersions,
    build_answer,
    read_media,
)
from transports.sip.refusals import RefusedInvites
from transports.sip.trunks import TrunkPolicy
from transports.sip.uas import TrunkUAS

StartCall = Callable[[IncomingCall, InviteInfo, RtpMedia, MediaChoice, SdpVersions], None]
"""(the INVITE, what it said, its bound media, the codec, the dialog's SDP versions)."""
Spawn = Callable[[Coroutine[Any, Any, None]], None]


class InboundInvites:
    """New INVITEs from screening to an answered call.

    Args:
        config: The endpoint's settings (bind host, SDP address).
        policy: Who may call (source allowlist, digest).
        admission: The bot's admission.
        uas: The endpoint's UAS.
        allocator: The RTP port range.
        spawn: Runs a coroutine as one of the endpoint's tasks.
        start_call: Takes an answered call (its handler runs from there).
    """

    def __init__(
        self,
        config: SipEndpointConfig,
        policy: TrunkPolicy,
        admission: Admission,
        uas: TrunkUAS,
        allocator: PortAllocator,
        spawn: Spawn,
        start_call: StartCall,
    ) -> None:
        self._config = config
        self._policy = policy
        self._admission = admission
        self._uas = uas
        self._allocator = allocator
        self._spawn = spawn
        self._start_call = start_call
        self._pending: dict[str, IncomingCall] = {}
        self._refused = RefusedInvites(uas.transport.send_reply)
        self._delayed = DelayedOffers(allocator, config.sdp_ip)

    def awaiting_ack(self, call_id: str | None) -> bool:
        """A delayed-offer call whose 200 waits for the ACK's answer."""
        return call_id in self._delayed

    def answered_awaiting_ack(self, call_id: str) -> IncomingCall | None:
        """The INVITE of a delayed-offer call whose 200 waits for the ACK."""
        return self._delayed.get(call_id)

    def route(self, request: SipRequest, deliver: Callable[[], None]) -> bool:
        """Take ``request`` when it is ours (True): a refusal's INVITE or ACK, a delayed ACK.

        ``deliver`` hands the request on to aiosipua (the ACK of a delayed offer still goes
        there: it stops the 200's retransmission and starts the session timer).
        """
        if self._refused.absorb(request):
            return True
        waiting = self._delayed.take(request)
        if waiting is None:
            return False
        deliver()
        self._spawn(self._answered_in_ack(waiting, request))
        return True

    def ack_timeout(self, call_id: str) -> None:
        """Our 200 was never acknowledged: forget a delayed offer's port."""
        self._spawn(self._delayed.drop(call_id))

    async def close(self) -> None:
        """Refuse the INVITEs being answered (503); stop resending refusals; free ports."""
        for incoming in list(self._pending.values()):
            refuse(self._uas, incoming, Rejection(503, "Service Unavailable"))
        self._pending.clear()
        self._refused.close()
        await self._delayed.close()

    def on_invite(self, incoming: IncomingCall) -> None:
        """Screen a new INVITE; refuse it, or answer it (a task)."""
        call_id = incoming.call_id
        if call_id in self._pending:
            # A retransmission while we bind RTP: aiosipua made a second record; keep ours
            self._uas._calls[call_id] = self._pending[call_id]
            return
        # RFC 3261 §12.1.1: a UAS keeps the Record-Route list in order (aiosipua reverses it)
        incoming.dialog.route_set = list(incoming.invite.headers.get("record-route"))
        info = invite_info(incoming)
        rejection = screen(incoming, info, self._policy, self._admission)
        if rejection is not None:
            self._refuse(incoming, rejection)
            return
        self._pending[call_id] = incoming
        self._spawn(self._answer(incoming, info))

    def _refuse(self, incoming: IncomingCall, rejection: Rejection) -> None:
        response = refuse(self._uas, incoming, rejection)
        if response is not None:
            self._refused.add(incoming.invite, response)

    async def _answer(self, incoming: IncomingCall, info: InviteInfo) -> None:
        call_id = incoming.call_id
        log = logger.bind(provider_call_id=call_id)
        offer = incoming.sdp_offer
        if offer is None:
            await self._offer_in_200(incoming, info)
            return
        choice = read_media(offer)
        try:
            media = await self._open_media(incoming, choice)
        except Exception:
            log.exception("sip: no RTP port for the call")
            self._pending.pop(call_id, None)
            self._refuse(incoming, Rejection(503, "Service Unavailable"))
            return
        self._pending.pop(call_id, None)
        if self._uas._calls.get(call_id) is not incoming:  # CANCELled meanwhile
            await media.close()
            return
        versions = SdpVersions()
        try:
            answer = build_answer(
                offer, ip=self._config.sdp_ip, port=media.port, choice=choice, versions=versions
            )
            incoming.accept(answer)
        except Exception:  # the port goes back; the admission slot times out (sip_admission)
            log.exception("sip: the INVITE could not be answered")
            await media.close()
            self._refuse(incoming, Rejection(500, "Server Internal Error"))
            return
        self._start_call(incoming, info, media, choice, versions)

    async def _offer_in_200(self, incoming: IncomingCall, info: InviteInfo) -> None:
        call_id = incoming.call_id
        try:
            port = await self._delayed.reserve_port()
        except Exception:
            logger.bind(provider_call_id=call_id).exception("sip: no RTP port for the call")
            self._pending.pop(call_id, None)
            self._refuse(incoming, Rejection(503, "Service Unavailable"))
            return
        self._pending.pop(call_id, None)
        if self._uas._calls.get(call_id) is not incoming:  # CANCELled meanwhile
            await self._allocator.release(port)
            return
        self._delayed.offer(incoming, info, port)

    async def _answered_in_ack(self, waiting: AwaitingAnswer, ack: SipRequest) -> None:
        incoming = waiting.incoming
        log = logger.bind(provider_call_id=incoming.call_id)
        try:
            choice = answer_in_ack(ack)
            media = await self._open_media(incoming, choice, port=waiting.port)
        except NoCommonCodec:
            log.info("sip: the ACK's answer has no PCMU/PCMA; BYE")
            incoming.hangup()
            self._uas._calls.pop(incoming.call_id, None)
            await self._allocator.release(waiting.port)
            return
        except Exception:
            log.exception("sip: no RTP for the delayed-offer call; BYE")
            incoming.hangup()
            self._uas._calls.pop(incoming.call_id, None)
            return
        if media.port != waiting.port:  # our offered port was taken meanwhile (rare)
            log.warning("sip: the offered RTP port could not be bound; BYE")
            await media.close()
            incoming.hangup()
            self._uas._calls.pop(incoming.call_id, None)
            return
        self._start_call(incoming, waiting.info, media, choice, waiting.versions)

    async def _open_media(
        self, incoming: IncomingCall, choice: MediaChoice, port: int | None = None
    ) -> RtpMedia:
        return await RtpMedia.open(
            call_id=incoming.call_id,
            bind_host=self._config.listen_host,
            allocator=self._allocator,
            remote=choice.remote,
            payload_type=choice.payload_type,
            dtmf_payload_type=choice.dtmf_payload_type,
            port=port,
            signalling_host=incoming.source_addr[0],
        )
