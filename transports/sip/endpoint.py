"""The agent as a UDP SIP endpoint: answers trunk INVITEs, places calls, keeps a registration.

Signalling is aiosipua's :class:`~aiosipua.SipUAS` / :class:`~aiosipua.SipUAC` on one socket
(:class:`~transports.sip.wire.GuardedUdpTransport`: bad input gets 400 there and never
reaches a dialog). An INVITE goes: source allowlist (403) -> digest (401) -> the bot's
:class:`~transports.sip.contracts.Admission` (486/503 + Retry-After) -> SDP (488 without
PCMU/PCMA) -> RTP bound -> 200 OK with the answer -> ``handler(call)`` as a task (that part
is :class:`~transports.sip.answering.InboundInvites`, delayed offers included). In-dialog:
BYE either way, CANCEL, re-INVITE hold/unhold, session timers (aiosipua), REFER + NOTIFY.
Log lines carry the Call-ID and status codes, never URIs' user parts, numbers or digits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from aiortp import PortAllocator
from aiosipua import IncomingCall, SipRequest, SipResponse
from aiosipua.message import SipMessage
from loguru import logger

from transports.sip.answering import InboundInvites
from transports.sip.call import EndpointCall
from transports.sip.config import SipEndpointConfig
from transports.sip.contracts import Admission, CallHandler, EndReason, InviteInfo
from transports.sip.dialing import Dialer, SipDialError, TrunkUAC, learn_remote_target
from transports.sip.inbound import info_key
from transports.sip.media import RtpMedia
from transports.sip.offer_answer import (
    MediaChoice,
    SdpVersions,
)
from transports.sip.registration import TrunkRegistration
from transports.sip.reinvite import answer_reinvite
from transports.sip.signalling import DialogSignalling
from transports.sip.trunks import DigestChallenger, TrunkPolicy
from transports.sip.uas import TrunkUAS
from transports.sip.wire import GuardedUdpTransport

__all__ = ["SipDialError", "SipEndpoint", "SipEndpointConfig"]

# aiosipua logs From/To URIs (numbers), REFER targets and our AOR: keep those loggers quiet
# (we log the same events by Call-ID and status).
for _name in ("aiosipua.uac", "aiosipua.uac_responses", "aiosipua.refer", "aiosipua.registration"):
    logging.getLogger(_name).setLevel(logging.ERROR)


class SipEndpoint:
    """One SIP endpoint: a UDP socket, the trunk's rules, the live calls.

    Args:
        config: Where to listen, what to advertise, who may call, how to call out.
        handler: Runs each answered call to its end (inbound calls; ``dial`` returns its own).
        admission: Decides whether an authorised INVITE is answered.
    """

    def __init__(
        self, config: SipEndpointConfig, handler: CallHandler, admission: Admission
    ) -> None:
        self.config = config
        self._handler = handler
        challenger = (
            DigestChallenger(config.username, config.password, config.realm)
            if config.username and config.challenge_inbound
            else None
        )
        self._allocator = PortAllocator((config.rtp_ports[0], config.rtp_ports[1] + 1))
        self._transport = GuardedUdpTransport(
            local_addr=(config.listen_host, config.listen_port),
            max_message_bytes=config.max_message_bytes,
        )
        self._uac = TrunkUAC(self._transport)
        self._uas = TrunkUAS(
            self._transport,
            user_agent=config.user_agent,
            uac=self._uac,
            session_expires=config.session_expires_s or None,
            min_se=config.session_min_se_s,
        )
        self._calls: dict[str, EndpointCall] = {}
        self._versions: dict[str, SdpVersions] = {}
        self._answered: dict[str, IncomingCall] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._registration: TrunkRegistration | None = None
        self._dialer: Dialer | None = None
        self._local_addr: tuple[str, int] = (config.listen_host, config.listen_port)
        self._invites = InboundInvites(
            config,
            TrunkPolicy(config.trunks, challenger),
            admission,
            self._uas,
            self._allocator,
            self._spawn,
            self._start_call,
        )

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def local_addr(self) -> tuple[str, int]:
        """The bound (host, port) of the SIP socket (the real port when 0 was asked for)."""
        return self._local_addr

    @property
    def calls(self) -> Mapping[str, EndpointCall]:
        """The live calls by Call-ID."""
        return dict(self._calls)

    @property
    def counters(self) -> Mapping[str, int]:
        """Malformed and oversized messages seen (for tests and /readyz)."""
        return dict(self._transport.counters)

    @property
    def registration(self) -> TrunkRegistration | None:
        """The REGISTER binding, when a registrar is configured."""
        return self._registration

    async def start(self) -> None:
        """Bind the socket, wire the callbacks and (if configured) REGISTER."""
        uas = self._uas
        uas.on_invite = self._invites.on_invite
        uas.on_reinvite = self._on_reinvite
        uas.on_bye = self._on_bye
        uas.on_cancel = self._on_cancel
        uas.on_ack_timeout = self._on_ack_timeout
        uas.on_session_expired = lambda call: self._ended(call.call_id, "session_expired")
        uas.on_transfer_progress = self._on_transfer_progress
        uas.on_info = self._on_info
        await uas.start()
        inner = self._transport.on_message
        self._transport.on_message = lambda msg, addr: self._route(msg, addr, inner)
        udp = self._transport._udp_transport
        assert udp is not None
        host, port = udp.get_extra_info("sockname")[:2]
        self._local_addr = (str(host), int(port))
        signalling = (self.config.sdp_ip, self._local_addr[1])
        self._transport.local_addr = self._local_addr
        uas.advertised_addr = signalling
        self._uac.advertised_addr = signalling
        self._dialer = Dialer(self.config, self._uac, self._allocator, self.adopt)
        logger.info("sip: listening on udp port {}", self._local_addr[1])
        if self.config.rtp_timeout_s > 0:
            self._spawn(self._watch_rtp(self.config.rtp_timeout_s))
        if self.config.registrar:
            self._registration = TrunkRegistration(self._uac, self.config)
            self._registration.start()

    async def stop(self) -> None:
        """BYE every live call, refuse the INVITEs being answered, unregister, close the socket."""
        await self._invites.close()
        calls = list(self._calls.values())
        for call in calls:
            self.end_call(call, "shutdown")
        await asyncio.gather(*(call.wait_closed() for call in calls))
        if self._registration is not None:
            self._registration.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.sleep(0.05)  # let the last BYE / REGISTER leave
        await self._uas.stop()

    async def dial(
        self,
        to_uri: str,
        *,
        from_uri: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
        on_ringing: Callable[[], None] | None = None,
    ) -> EndpointCall:
        """Place a call; returns it answered, or raises :class:`SipDialError`.

        ``on_ringing`` is called once on the callee's first 180/183.
        """
        assert self._dialer is not None, "start() the endpoint first"
        return await self._dialer.dial(
            to_uri, from_uri=from_uri, headers=headers, timeout_s=timeout_s, on_ringing=on_ringing
        )

    # --- the dialer's and calls' side ------------------------------------------------------

    def adopt(self, call: EndpointCall, versions: SdpVersions) -> None:
        """Track a call until it ends."""
        self._calls[call.call_id] = call
        self._versions[call.call_id] = versions
        call.on_end(lambda _reason: self._forget(call.call_id))

    def end_call(self, call: EndpointCall, reason: EndReason) -> None:
        """BYE ``call`` and end it with ``reason`` (shutdown, rtp_timeout, ...)."""
        call.terminate(reason)

    async def _watch_rtp(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(5.0, timeout_s / 4))
            now = loop.time()
            for call in list(self._calls.values()):
                try:
                    if call.media.expects_rtp and now - call.media.last_rx > timeout_s:
                        logger.bind(provider_call_id=call.call_id).info("sip: no RTP; hanging up")
                        self.end_call(call, "rtp_timeout")
                except Exception:  # one call's failure must not stop the watch for all
                    logger.bind(provider_call_id=call.call_id).exception("sip: RTP watch failed")

    def _forget(self, call_id: str) -> None:
        self._answered.pop(call_id, None)
        self._calls.pop(call_id, None)
        self._versions.pop(call_id, None)

    # --- routing -----------------------------------------------------------------------------

    def _route(self, message: SipMessage, addr: tuple[str, int], inner: object) -> None:
        def deliver() -> None:
            if callable(inner):
                inner(message, addr)

        if isinstance(message, SipRequest) and (
            self._invites.route(message, deliver) or self._is_retransmitted_invite(message)
        ):
            # a refusal's retransmitted INVITE or ACK (its transaction answers), a delayed
            # offer's ACK, or our 200 is being retransmitted until the ACK (aiosipua: 481)
            return
        if isinstance(message, SipResponse):
            learn_remote_target(self._uac, message)
            cseq = message.cseq
            if cseq is not None and cseq.method.upper() == "REFER":
                # aiosipua drops responses to REFER (no transaction user): hand them here
                call = self._calls.get(message.call_id or "")
                if call is not None and message.status_code >= 200:
                    call.refer_answered(message.status_code, message.reason_phrase)
                return
        deliver()

    def _is_retransmitted_invite(self, request: SipRequest) -> bool:
        call_id = request.call_id
        if request.method.upper() != "INVITE" or (
            call_id not in self._calls and not self._invites.awaiting_ack(call_id)
        ):
            return False
        to = request.to_addr
        record = self._uas._calls.get(request.call_id or "")
        first = record.invite.cseq if record is not None else None
        cseq = request.cseq
        return not (to and to.tag) and (first is None or cseq is None or cseq.seq == first.seq)

    # --- an answered inbound INVITE ---------------------------------------------------------

    def _start_call(
        self,
        incoming: IncomingCall,
        info: InviteInfo,
        media: RtpMedia,
        choice: MediaChoice,
        versions: SdpVersions,
    ) -> None:
        call_id = incoming.call_id
        media.apply(choice.held, choice.peer_sends)
        self._answered[call_id] = incoming
        signalling = DialogSignalling(self._uac, incoming.dialog, incoming.source_addr, incoming)
        signalling.on_bye_sent = lambda: self._uas._calls.pop(call_id, None)
        call = EndpointCall(
            call_id=call_id, direction="inbound", invite=info, media=media, signalling=signalling
        )
        self.adopt(call, versions)
        logger.bind(provider_call_id=call_id).info(
            "sip: call answered (pt {})", choice.payload_type
        )
        self._spawn(self._run_handler(call))

    async def _run_handler(self, call: EndpointCall) -> None:
        try:
            await self._handler(call)
        except Exception:
            logger.bind(provider_call_id=call.call_id).exception("sip: the call handler failed")
        finally:
            if not call.ended:
                await call.hang_up()

    # --- in-dialog -------------------------------------------------------------------------------

    def _on_reinvite(self, incoming: IncomingCall) -> None:
        call_id = incoming.call_id
        call, versions = self._calls.get(call_id), self._versions.get(call_id)
        if call is None or versions is None:
            incoming._send_response(481, "Call/Transaction Does Not Exist")
            return
        answer_reinvite(incoming, call.media, versions, self.config.sdp_ip)

    def _on_bye(self, _incoming: IncomingCall, request: SipRequest) -> None:
        self._ended(request.call_id or "", "remote_bye")

    def _on_cancel(self, request: SipRequest, _addr: tuple[str, int]) -> None:
        call_id = request.call_id or ""
        record = self._answered.get(call_id)
        waiting = self._invites.answered_awaiting_ack(call_id)
        if waiting is not None:  # a delayed offer's 200 crossed the CANCEL: the ACK comes
            self._uas._calls[call_id] = waiting
            return
        if record is None:
            logger.bind(provider_call_id=call_id).info("sip: INVITE cancelled")
            return
        # The CANCEL crossed our 200: it has no effect (RFC 3261 §9.2), but aiosipua forgot
        # the dialog (a later BYE would get 481) and stopped its timers; put them back.
        self._uas._calls[call_id] = record
        self._uas._start_session_timer(record)

    def _on_info(self, call_id: str, request: SipRequest) -> None:
        call = self._calls.get(call_id)
        if call is not None:
            digit = info_key(request)
            if digit is not None:
                call.media.keypress(digit)

    def _on_transfer_progress(self, call_id: str, status: int, reason: str) -> None:
        call = self._calls.get(call_id)
        if call is not None:
            call.refer_progress(status, reason)

    def _on_ack_timeout(self, incoming: IncomingCall) -> None:
        self._invites.ack_timeout(incoming.call_id)
        self._ended(incoming.call_id, "ack_timeout")

    def _ended(self, call_id: str, reason: EndReason) -> None:
        call = self._calls.get(call_id)
        if call is not None:
            call.mark_ended(reason)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[None]) -> None:
    """Log a spawned task's failure at once (by type: its message may quote the peer)."""
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.error("sip: a background task failed ({})", type(error).__name__)
