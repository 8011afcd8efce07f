"""The server's view of its attempts: the outbound store off the event loop, ends told once."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from loguru import logger

from bot.outbound.listeners import AttemptListeners
from integrations.outbound.dispositions import Disposition
from integrations.outbound.store import Attempt, OutboundStore, OutboundStoreError
from integrations.storage.records import CallUpdate
from processors.call_outcome import RecordSink


class Attempts:
    """Attempts of one server: reads and writes in a worker thread; ends notify listeners.

    Args:
        store: The outbound store (the call-record database).
        listeners: Told once when an attempt ends.
        records: Where the call record's final disposition is written (None: not recorded).
    """

    def __init__(
        self,
        store: OutboundStore,
        listeners: AttemptListeners,
        records: RecordSink | None = None,
    ) -> None:
        self.store = store
        self.listeners = listeners
        self._records = records

    async def get(self, attempt_id: str) -> Attempt | None:
        """The attempt, or None."""
        return await asyncio.to_thread(self.store.attempt, attempt_id)

    async def new(
        self, *, agent: str, to: str, variables: Mapping[str, str], channel: str
    ) -> Attempt:
        """Write a single call's attempt (raises ``OutboundStoreError`` for a bad number)."""
        return await asyncio.to_thread(
            lambda: self.store.new_attempt(agent=agent, to=to, variables=variables, channel=channel)
        )

    async def claim(self, attempt_id: str) -> bool:
        """Whether this caller may dial the attempt (once)."""
        return await asyncio.to_thread(self.store.claim_dial, attempt_id)

    async def mark_dialed(self, attempt_id: str, provider_call_id: str) -> None:
        """The provider named the call."""
        await asyncio.to_thread(self.store.mark_dialed, attempt_id, provider_call_id)

    async def mark_status(
        self, attempt_id: str, state: str, answered_by: str | None = None
    ) -> None:
        """A progress state (ringing, in-progress)."""
        await asyncio.to_thread(
            lambda: self.store.mark_status(attempt_id, state, answered_by=answered_by)
        )

    async def set_answered_by(self, attempt_id: str, answered_by: str) -> None:
        """The provider's machine-detection verdict."""
        await asyncio.to_thread(self.store.set_answered_by, attempt_id, answered_by)

    async def link_call(self, attempt_id: str, call_id: str) -> None:
        """The attempt's call record."""
        await asyncio.to_thread(self.store.link_call, attempt_id, call_id)

    async def record_outcome(self, attempt_id: str, disposition: str) -> None:
        """The outcome decided in the call."""
        await asyncio.to_thread(self.store.record_outcome, attempt_id, disposition)

    async def do_not_call(self, phone: str, source: str) -> bool:
        """Put a number on the do-not-call list; False if it is not a phone number."""
        try:
            await asyncio.to_thread(self.store.dnc_add, phone, source)
        except OutboundStoreError:
            return False  # a browser "callee" is no number
        return True

    async def on_dnc_list(self, phone: str) -> bool:
        """Whether the number is on the do-not-call list."""
        return await asyncio.to_thread(self.store.dnc_contains, phone)

    async def finish(
        self,
        attempt_id: str,
        fallback: Disposition,
        *,
        error_code: int | None = None,
        error: str | None = None,
    ) -> Attempt | None:
        """End the attempt (first end wins); listeners hear of it once, in one process.

        The database decides which end is first (a conditional update), so of ends racing
        on several server processes (the call's own end on one, Twilio's status callback
        on another) exactly one is applied and told. The call record (if the attempt has
        one) gets the attempt's final disposition. Returns the attempt as it is now (None:
        unknown).
        """
        ended = await asyncio.to_thread(
            lambda: self.store.end(attempt_id, fallback, error_code=error_code, error=error)
        )
        after = await self.get(attempt_id)
        if not ended or after is None:
            return after
        logger.bind(attempt_id=attempt_id).info(f"outbound attempt ended: {after.disposition}")
        if self._records is not None and after.call_id and after.disposition:
            self._records.update_call(
                CallUpdate(call_id=after.call_id, disposition=after.disposition)
            )
        await self.listeners.notify(after)
        return after
