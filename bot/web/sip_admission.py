"""Which SIP INVITEs are answered: the process's call cap and drain, as for every call.

The SIP endpoint asks before answering an INVITE that passed the trunk checks (source
allowlist, digest). :class:`SipCallAdmission` takes a slot under the same cap as the Twilio
and browser calls (``bot/web/admission.py``, route ``sip``): full, the INVITE is answered
486 Busy Here; while the process drains (or is not admitting), 503 Service Unavailable with
``Retry-After``, so the trunk tries another agent or later. No per-client rate applies: one
trunk (one source address) carries every call of a PBX, and it is already authorised.

The slot is taken at the INVITE (so two INVITEs cannot both take the last one) and handed
to the call when it is established (:meth:`SipCallAdmission.take`); an INVITE that is
never established (488, CANCEL, no ACK) gives it back after :data:`PENDING_SLOT_S`.
"""

from __future__ import annotations

import asyncio

from bot.web.admission import Admission, CallSlot, Refused
from transports.sip.contracts import InviteInfo, Refusal

ROUTE = "sip"
PENDING_SLOT_S = 40.0
"""How long an admitted INVITE holds its slot before its call starts (SIP's Timer H is 32 s)."""


class SipCallAdmission:
    """The SIP endpoint's :class:`transports.sip.contracts.Admission` over the call cap.

    Args:
        admission: The process's admission (cap, slots, drain).
        pending_s: How long a slot waits for its call to be established.
    """

    def __init__(self, admission: Admission, *, pending_s: float = PENDING_SLOT_S) -> None:
        self._admission = admission
        self._pending_s = pending_s
        self._pending: dict[str, tuple[CallSlot, asyncio.TimerHandle | None]] = {}

    def __call__(self, invite: InviteInfo) -> Refusal | None:
        """None (answer: a slot is held for the call), or 486 when full, 503 when draining."""
        self._drop(invite.call_id)  # a repeated INVITE does not hold two slots
        try:
            slot = self._admission.acquire(ROUTE, invite.source[0])
        except Refused as refusal:
            if not self._admission.admitting:
                return Refusal(503, "Service Unavailable", retry_after_s=refusal.retry_after_s)
            return Refusal(486, "Busy Here")
        try:
            timer = asyncio.get_running_loop().call_later(
                self._pending_s, self._drop, invite.call_id
            )
        except RuntimeError:  # no loop (a synchronous test): the call takes it or it is held
            timer = None
        self._pending[invite.call_id] = (slot, timer)
        return None

    def take(self, call_id: str) -> CallSlot | None:
        """The slot admitted for ``call_id`` (the call now holds it); None if there is none."""
        held = self._pending.pop(call_id, None)
        if held is None:
            return None
        slot, timer = held
        if timer is not None:
            timer.cancel()
        return slot

    @property
    def pending(self) -> int:
        """INVITEs admitted whose call has not started yet."""
        return len(self._pending)

    def _drop(self, call_id: str) -> None:
        slot = self.take(call_id)
        if slot is not None:
            slot.release()
