"""The server transaction of a refused INVITE over UDP (RFC 3261 §17.2.1), which aiosipua lacks.

aiosipua sends a non-2xx final response once and forgets the INVITE: a lost 486 leaves the
trunk retransmitting its INVITE, which aiosipua then treats as a new call (admission runs
again and may answer what it refused). Here each refusal is kept as a transaction: the
response is resent on Timer G (T1 = 500 ms, doubling up to T2 = 4 s) until the ACK arrives
or Timer H (64 x T1 = 32 s) runs out, and a retransmitted INVITE (same Call-ID, top-Via
branch and CSeq) gets the same response again without reaching aiosipua or admission. The
ACK of a non-2xx response carries the INVITE's branch and CSeq number (§17.1.1.3).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from aiosipua import SipRequest, SipResponse

T1 = 0.5
"""RFC 3261 round-trip estimate (s): Timer G's first interval."""
T2 = 4.0
"""Timer G's longest interval (s)."""
TIMER_H = 64 * T1
"""How long a refusal waits for its ACK (s)."""
REMEMBERED = 1024
"""Refusals kept at once; the oldest is dropped first (a flood cannot grow this)."""

_Key = tuple[str, str, int]


def _key(request: SipRequest) -> _Key | None:
    """(Call-ID, top-Via branch, CSeq number), or None when the request lacks one."""
    vias = request.via
    cseq = request.cseq
    branch = vias[0].branch if vias else None
    if not request.call_id or not branch or cseq is None:
        return None
    return (request.call_id, branch, cseq.seq)


@dataclass
class _Refusal:
    response: SipResponse
    deadline: float
    interval: float
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class RefusedInvites:
    """The refused INVITEs still waiting for their ACK, resending their response.

    Args:
        send: Sends a response back the way its Via says (the UAS transport's ``send_reply``).
    """

    def __init__(self, send: Callable[[SipResponse], None]) -> None:
        self._send = send
        self._refusals: OrderedDict[_Key, _Refusal] = OrderedDict()

    def __len__(self) -> int:
        return len(self._refusals)

    def add(self, invite: SipRequest, response: SipResponse) -> None:
        """Keep ``response`` (already sent once) for ``invite`` until its ACK or Timer H."""
        key = _key(invite)
        if key is None or response.status_code < 300:
            return
        self._drop(key)
        loop = asyncio.get_running_loop()
        refusal = _Refusal(response, loop.time() + TIMER_H, T1)
        self._refusals[key] = refusal
        self._arm(key, refusal)
        while len(self._refusals) > REMEMBERED:
            self._drop(next(iter(self._refusals)))

    def absorb(self, request: SipRequest) -> bool:
        """True when ``request`` belongs to a refusal: a retransmitted INVITE or its ACK.

        A retransmitted INVITE gets the same response again; the ACK ends the transaction.
        Anything else (a new INVITE, an INVITE with credentials: a new branch) is False.
        """
        method = request.method.upper()
        if method not in ("INVITE", "ACK"):
            return False
        key = _key(request)
        if key is None:
            return False
        if method == "INVITE":
            refusal = self._refusals.get(key)
            if refusal is None:
                return False
            self._send(refusal.response)
            return True
        for known in list(self._refusals):  # the ACK: same Call-ID and CSeq number
            if known[0] == key[0] and known[2] == key[2]:
                self._drop(known)
                return True
        return False

    def close(self) -> None:
        """Stop every retransmission."""
        for key in list(self._refusals):
            self._drop(key)

    def _arm(self, key: _Key, refusal: _Refusal) -> None:
        loop = asyncio.get_running_loop()
        refusal.timer = loop.call_later(refusal.interval, self._fire, key)

    def _fire(self, key: _Key) -> None:
        refusal = self._refusals.get(key)
        if refusal is None:
            return
        if asyncio.get_running_loop().time() >= refusal.deadline:
            self._refusals.pop(key, None)  # Timer H: no ACK, the transaction ends
            return
        self._send(refusal.response)
        refusal.interval = min(refusal.interval * 2, T2)
        self._arm(key, refusal)

    def _drop(self, key: _Key) -> None:
        refusal = self._refusals.pop(key, None)
        if refusal is not None and refusal.timer is not None:
            refusal.timer.cancel()
