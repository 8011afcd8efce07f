"""Browser offers that answer an outbound call's ring (``request_data.ring``).

The ring token is the offer's credential (single-use, bound to its attempt: see
``bot/outbound/ring.py``); the origin check and the call cap are the browser gate's as for
any offer. Offers without a ring go to the browser gate unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException, Request

from bot.client_address import ClientAddresses
from bot.outbound.ring import RingError, Rings
from bot.web.admission import Admission, CallSlot
from bot.web.call_access import ROUTE, BrowserCallGate

RING_PARAMETER = "ring"


class RingOfferGate:
    """A :class:`transports.webrtc.OfferGate`: ring answers here, other offers to ``inner``."""

    def __init__(
        self,
        inner: BrowserCallGate,
        rings: Rings,
        admission: Admission,
        addresses: ClientAddresses,
    ) -> None:
        self._inner = inner
        self._rings = rings
        self._admission = admission
        self._addresses = addresses

    async def allow(self, request: Request) -> None:
        """Requests about an existing connection: the browser gate's origin check."""
        await self._inner.allow(request)

    async def admit(
        self, request: Request, body: Mapping[str, Any], params: Mapping[str, str]
    ) -> CallSlot:
        """Admit an answer to a ring (its token used up once a slot is taken)."""
        ring = params.get(RING_PARAMETER)
        if ring is None:
            return await self._inner.admit(request, body, params)
        await self._inner.allow(request)  # the origin check
        client = self._addresses.of(request)
        try:
            await self._rings.check(ring)
        except RingError as e:
            self._admission.refused(ROUTE, "credentials", client)
            raise HTTPException(403, str(e)) from None
        slot = self._admission.acquire(ROUTE, client)  # over the cap: still ringing
        try:  # the single use: of answers racing on several processes, one gets it
            await self._rings.answer(ring)
        except RingError as e:
            slot.release()
            self._admission.refused(ROUTE, "credentials", client)
            raise HTTPException(403, str(e)) from None
        return slot
