"""Outbound calls over the trunk: INVITE with our offer, digest on 401/407, the answer or why not.

aiosipua's UAC sends the INVITE, PRACKs reliable 18x, answers one digest challenge and ACKs
the 2xx; this module picks where the INVITE goes (the outbound proxy, else the registrar,
else the To URI's host), binds the RTP once the answer names the peer, and turns a final
failure into :class:`SipDialError` with the status (486 busy, 480/408 no answer, 603, ...).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from aiortp import PortAllocator
from aiosipua import (
    Dialog,
    DialogState,
    OutgoingCall,
    SipDigestAuth,
    SipRequest,
    SipResponse,
    SipUAC,
    stringify_uri,
)
from loguru import logger

from transports.sip.call import EndpointCall
from transports.sip.config import SipEndpointConfig, parse_hostport, uri_user
from transports.sip.contracts import InviteInfo
from transports.sip.media import RtpMedia
from transports.sip.offer_answer import NoCommonCodec, SdpVersions, build_offer, read_media
from transports.sip.refusal_ack import RefusalAcks
from transports.sip.signalling import DialogSignalling

CANCELLED_LINGER_S = 32.0
"""How long a 2xx crossing our CANCEL is still ACKed and ended (64*T1, RFC 3261 Timer B)."""

RETRYABLE_STATUSES = frozenset({0, 408, 480, 486, 487, 500, 503, 504, 600})
"""Final statuses worth another attempt later (busy, no answer, the trunk's trouble)."""


class SipDialError(Exception):
    """An outbound call that was not answered.

    Parameters:
        status: The final SIP status (486, 480, 408 for our own timeout, 488 for no common
            codec, ...).
        reason: The reason phrase (no caller data).
        retryable: Whether trying again later makes sense.
    """

    def __init__(self, status: int, reason: str, retryable: bool) -> None:
        super().__init__(f"SIP {status} {reason}")
        self.status = status
        self.reason = reason
        self.retryable = retryable


def learn_remote_target(uac: SipUAC, response: SipResponse) -> None:
    """Take the remote target and route set from the 2xx to our INVITE (RFC 3261 §12.1.2).

    aiosipua keeps sending in-dialog requests (ACK, BYE, REFER) to the To URI with no route
    set; a trunk's proxy expects the callee's Contact and its Record-Route.
    """
    cseq = response.cseq
    if cseq is None or cseq.method.upper() != "INVITE" or not 200 <= response.status_code < 300:
        return
    outgoing = uac.get_call(response.call_id or "")
    if outgoing is None or outgoing.dialog.state != DialogState.EARLY:
        return
    try:
        contacts = response.contact
    except Exception:  # an unreadable Contact: keep the To URI
        contacts = []
    if contacts:
        outgoing.dialog.remote_target = stringify_uri(contacts[0].uri)
    outgoing.dialog.route_set = list(reversed(response.headers.get("record-route")))


class TrunkUAC(SipUAC):
    """aiosipua's UAC, keeping an INVITE's extra headers on its digest retry.

    aiosipua rebuilds the INVITE after a 401/407 without the ``extra_headers`` it was sent
    with (X- headers, ...); this remembers them per Call-ID and adds them to every rebuild.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invite_headers: dict[str, dict[str, str]] = {}
        self._next_headers: dict[str, str] | None = None
        self._refusal_acks = RefusalAcks()
        self._cancelled: dict[str, OutgoingCall] = {}

    def cancel_invite(self, outgoing: OutgoingCall) -> None:
        """CANCEL ``outgoing``; a 2xx that crosses the CANCEL is ACKed, then BYE (RFC 3261 §9.1).

        aiosipua forgets the call when it sends the CANCEL, so a callee who answered just
        then would get no ACK and hear silence until its own timers gave up.
        """
        outgoing.cancel(self)
        call_id = outgoing.call_id
        self._cancelled[call_id] = outgoing
        asyncio.get_running_loop().call_later(
            CANCELLED_LINGER_S, self._cancelled.pop, call_id, None
        )

    def handle_response(self, response: SipResponse, addr: tuple[str, int]) -> None:
        """As aiosipua's, acknowledging a refused INVITE first (aiosipua never does)."""
        call_id = response.call_id or ""
        call = self.get_call(call_id)
        ack = self._refusal_acks.ack_for(response, call.invite if call is not None else None)
        if ack is not None:
            self.transport.send(ack, call.remote_addr if call is not None else addr)
        crossed = self._crossed_cancel(response) if call is None else None
        if crossed is not None:  # answered as we cancelled: let aiosipua ACK it as an answer
            crossed.dialog.state = DialogState.EARLY
            self._calls[call_id] = crossed
        super().handle_response(response, addr)
        if crossed is not None:
            logger.bind(provider_call_id=call_id).info("sip: answered after our CANCEL; BYE")
            crossed.hangup(self)

    def _crossed_cancel(self, response: SipResponse) -> OutgoingCall | None:
        cseq = response.cseq
        if cseq is None or cseq.method.upper() != "INVITE" or not 200 <= response.status_code < 300:
            return None
        return self._cancelled.pop(response.call_id or "", None)

    def send_invite(self, *args: Any, **kwargs: Any) -> OutgoingCall:
        """As aiosipua's, with ``extra_headers`` kept for the retried INVITE."""
        self._next_headers = dict(kwargs.get("extra_headers") or {})
        try:
            return super().send_invite(*args, **kwargs)
        finally:
            self._next_headers = None

    def _build_invite(self, dialog: Dialog, **kwargs: Any) -> SipRequest:
        if self._next_headers is not None:
            self.invite_headers.setdefault(dialog.call_id, self._next_headers)
        invite = super()._build_invite(dialog, **kwargs)
        for name, value in self.invite_headers.get(dialog.call_id, {}).items():
            invite.headers.set_single(name, value)
        return invite


def _once(callback: Callable[[], None]) -> Callable[[OutgoingCall], None]:
    """Aiosipua's ``on_ringing`` (each 180/183, resent ones too) as one ``callback()``."""
    fired = False

    def ringing(_call: OutgoingCall) -> None:
        nonlocal fired
        if not fired:
            fired = True
            callback()

    return ringing


class Dialer:
    """Places the endpoint's outbound calls.

    Args:
        config: The endpoint's configuration (proxy, caller id, credentials, addresses).
        uac: aiosipua's UAC on the endpoint's socket.
        allocator: The RTP port range.
        adopt: Hands an answered call to the endpoint (BYE, re-INVITE, REFER arrive there).
    """

    def __init__(
        self,
        config: SipEndpointConfig,
        uac: TrunkUAC,
        allocator: PortAllocator,
        adopt: Callable[[EndpointCall, SdpVersions], None],
    ) -> None:
        self._config = config
        self._uac = uac
        self._allocator = allocator
        self._adopt = adopt

    async def dial(
        self,
        to_uri: str,
        *,
        from_uri: str | None,
        headers: Mapping[str, str] | None,
        timeout_s: float,
        on_ringing: Callable[[], None] | None = None,
    ) -> EndpointCall:
        """INVITE ``to_uri`` and wait up to ``timeout_s`` for the answer.

        ``on_ringing`` is called once, on the first 180 or 183 (the callee's phone rings).

        Raises:
            SipDialError: A final failure, our timeout (408, after CANCEL) or no common codec.
        """
        config = self._config
        if not to_uri.lower().startswith(("sip:", "sips:")):
            raise SipDialError(484, "Address Incomplete", False)
        target = parse_hostport(config.outbound_proxy or config.registrar or to_uri)
        caller = from_uri or f"sip:{config.caller_id or 'callagent'}@{config.sdp_ip}"
        rtp_port, _ = await self._allocator.allocate()
        versions = SdpVersions()
        offer = build_offer(ip=config.sdp_ip, port=rtp_port, versions=versions)
        auth = SipDigestAuth(config.username, config.password) if config.username else None
        try:
            outgoing = self._uac.send_invite(
                caller,
                to_uri,
                target,
                offer,
                extra_headers=dict(headers or {}),
                user_agent=config.user_agent,
                auth=auth,
                session_expires=config.session_expires_s or None,
            )
        except Exception:  # e.g. a URI aiosipua cannot build a request from
            await self._allocator.release(rtp_port)
            raise SipDialError(484, "Address Incomplete", False) from None
        log = logger.bind(provider_call_id=outgoing.call_id)
        log.info("sip: INVITE sent")
        if on_ringing is not None:
            outgoing.on_ringing = _once(on_ringing)
        try:
            await self._wait(outgoing, rtp_port, timeout_s)
        finally:
            self._uac.invite_headers.pop(outgoing.call_id, None)
        return await self._answered(outgoing, rtp_port, versions, caller, to_uri, target, headers)

    async def _wait(self, outgoing: OutgoingCall, rtp_port: int, timeout_s: float) -> None:
        log = logger.bind(provider_call_id=outgoing.call_id)
        try:
            await outgoing.wait_answered(timeout_s)
        except TimeoutError:
            self._uac.cancel_invite(outgoing)
            await self._allocator.release(rtp_port)
            log.info("sip: no answer in {:.0f} s; CANCEL sent", timeout_s)
            raise SipDialError(408, "Request Timeout", True) from None
        except RuntimeError:
            await self._allocator.release(rtp_port)
            status, reason = outgoing._reject_code, outgoing._reject_reason
            log.info("sip: call not answered ({})", status)
            raise SipDialError(status, reason, status in RETRYABLE_STATUSES) from None
        except asyncio.CancelledError:
            self._uac.cancel_invite(outgoing)
            await self._allocator.release(rtp_port)
            raise

    async def _answered(
        self,
        outgoing: OutgoingCall,
        rtp_port: int,
        versions: SdpVersions,
        caller: str,
        to_uri: str,
        target: tuple[str, int],
        headers: Mapping[str, str] | None,
    ) -> EndpointCall:
        signalling = DialogSignalling(self._uac, outgoing.dialog, outgoing.remote_addr)
        try:
            if outgoing.sdp_answer is None:
                raise NoCommonCodec("no SDP answer")
            choice = read_media(outgoing.sdp_answer)
        except NoCommonCodec:
            signalling.send_bye()
            await self._allocator.release(rtp_port)
            raise SipDialError(488, "Not Acceptable Here", False) from None
        try:
            media = await RtpMedia.open(
                call_id=outgoing.call_id,
                bind_host=self._config.listen_host,
                allocator=self._allocator,
                remote=choice.remote,
                payload_type=choice.payload_type,
                dtmf_payload_type=choice.dtmf_payload_type,
                port=rtp_port,
                signalling_host=outgoing.remote_addr[0],
            )
        except Exception:  # the callee answered: end its dialog (open gave the port back)
            logger.bind(provider_call_id=outgoing.call_id).exception("sip: no RTP; BYE")
            signalling.send_bye()
            raise SipDialError(503, "Service Unavailable", True) from None
        if media.port != rtp_port:  # our offered port was taken meanwhile: the SDP is wrong
            await media.close()
            signalling.send_bye()
            raise SipDialError(503, "Service Unavailable", True)
        media.apply(choice.held, choice.peer_sends)
        info = InviteInfo(
            call_id=outgoing.call_id,
            source=target,
            caller=uri_user(caller),
            callee=uri_user(to_uri),
            headers={
                k.lower(): v for k, v in (headers or {}).items() if k.lower().startswith("x-")
            },
        )
        call = EndpointCall(
            call_id=outgoing.call_id,
            direction="outbound",
            invite=info,
            media=media,
            signalling=signalling,
        )
        outgoing.on_session_expired = lambda _o: call.mark_ended("session_expired")
        self._adopt(call, versions)
        logger.bind(provider_call_id=outgoing.call_id).info(
            "sip: call answered (pt {})", choice.payload_type
        )
        return call
