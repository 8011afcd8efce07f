"""A campaign's attempts placed at most once: claimed, dialled, named by the provider."""

from __future__ import annotations

import asyncio

from loguru import logger

from bot.outbound.dialer import Dialer
from integrations.outbound.store import Attempt, OutboundStore


class ClaimingDialer:
    """The campaign runner's :class:`~bot.outbound.ports.AttemptPlacer` over a channel's dialer.

    Only the caller that moves the attempt from ``created`` to ``dialing`` dials it
    (``OutboundStore.claim_dial``), so a task run twice, on any worker, places it once.

    Args:
        store: The outbound store.
        dialer: The channel's dialer (Twilio ``calls.create``).
        public_url: Where the provider reaches the server (answer and callback URLs).
    """

    def __init__(self, store: OutboundStore, dialer: Dialer, public_url: str) -> None:
        self._store = store
        self._dialer = dialer
        self._public_url = public_url

    async def place(self, attempt: Attempt) -> None:
        """Claim and dial ``attempt``; raises ``DialError`` when the provider refuses it."""
        if not await asyncio.to_thread(self._store.claim_dial, attempt.id):
            logger.info(f"attempt {attempt.id}: already claimed, not dialled again")
            return
        dialled = await self._dialer.dial(attempt, self._public_url)
        await asyncio.to_thread(self._store.mark_dialed, attempt.id, dialled.provider_call_id)
