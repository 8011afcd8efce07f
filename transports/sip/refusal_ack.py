"""The ACK for a refused INVITE (RFC 3261 §17.1.1.3), which aiosipua 0.7.1 never sends.

Without it the callee's server transaction goes on resending its 486/487/603 for 32 s
(Timer H) and a trunk may count the call as broken. The ACK of a non-2xx final response
belongs to the INVITE's own transaction: the INVITE's Request-URI, its top Via (same
branch), From, Call-ID, CSeq number and Route, and the response's To (with the callee's
tag). Retransmitted refusals are acknowledged again.
"""

from __future__ import annotations

from collections import OrderedDict

from aiosipua import SipRequest, SipResponse

REMEMBERED = 256
"""Refused INVITEs kept for their retransmitted refusals (bounded: one per recent call)."""


class RefusalAcks:
    """Builds the ACKs for refusals of our INVITEs, remembering recently refused ones."""

    def __init__(self) -> None:
        self._refused: OrderedDict[str, SipRequest] = OrderedDict()

    def ack_for(self, response: SipResponse, invite: SipRequest | None) -> SipRequest | None:
        """The ACK for ``response`` if it refuses an INVITE of ours (None otherwise).

        Args:
            response: A response the UAC received.
            invite: The call's current INVITE, if the UAC still tracks the call (after the
                first refusal it does not, and the remembered one is used).
        """
        cseq = response.cseq
        status = response.status_code
        if cseq is None or cseq.method.upper() != "INVITE" or not 300 <= status <= 699:
            return None
        call_id = response.call_id or ""
        sent = invite if invite is not None else self._refused.get(call_id)
        if sent is None or sent.cseq is None or sent.cseq.seq != cseq.seq:
            return None
        self._remember(call_id, sent)
        ack = SipRequest(method="ACK", uri=sent.uri)
        vias = sent.headers.get("via")
        if vias:
            ack.headers.append("Via", vias[0])
        ack.headers.set_single("Max-Forwards", "70")
        for name in ("from", "call-id"):
            value = sent.get_header(name)
            if value:
                ack.headers.set_single(name.title(), value)
        to = response.get_header("to")
        if to:
            ack.headers.set_single("To", to)
        ack.headers.set_single("CSeq", f"{cseq.seq} ACK")
        for route in sent.headers.get("route"):
            ack.headers.append("Route", route)
        ack.headers.set_single("Content-Length", "0")
        return ack

    def _remember(self, call_id: str, invite: SipRequest) -> None:
        self._refused[call_id] = invite
        self._refused.move_to_end(call_id)
        while len(self._refused) > REMEMBERED:
            self._refused.popitem(last=False)
