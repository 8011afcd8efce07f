"""Follows an outbound call's outcome frames into its attempt and its call record.

An observer (it changes nothing in the call):

- ``OutcomeFrame``: the attempt's outcome is recorded at once (the last one decided counts),
  and the call record's ``disposition``;
- ``DoNotCallFrame``: the callee's number goes on the do-not-call list at once, so they are
  never called again even if the call drops before it ends;
- ``MachineVerdictFrame``: the call record's ``amd_verdict`` and ``amd_ms``; a verdict
  of the call's own detection (not the provider's, which its callback records) becomes
  the attempt's ``answered_by`` when the provider gave none (a SIP trunk never does).

The attempt side is a small protocol (:class:`AttemptUpdates`; the server's is in
``bot/outbound/in_call.py``). Its writes run in order in a task of their own, started as the
frame is seen: the observer's queue never waits for the database, and a call torn down
right after (the callee hangs up) still completes them (:meth:`cleanup` waits for them).
Failures are logged by frame type, never raised into the call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from loguru import logger
from pipecat.observers.base_observer import BaseObserver, FramePushed

from integrations.storage.records import CallUpdate, clean_number
from processors.call_outcome import RecordSink
from processors.frames import DoNotCallFrame, MachineVerdictFrame, OutcomeFrame


class AttemptUpdates(Protocol):
    """What the call tells its dial attempt."""

    async def outcome(self, disposition: str) -> None:
        """The call's outcome was decided."""
        ...

    async def do_not_call(self, reason: str) -> None:
        """The callee asked not to be called again."""
        ...

    async def machine_verdict(self, verdict: str) -> None:
        """The call's own detection decided who answered (``human``, ``machine``, ...)."""
        ...


class OutboundOutcomeObserver(BaseObserver):
    """Writes one outbound call's outcome, opt-out and machine verdict (see the module).

    Args:
        call_id: Our id for the call.
        attempt: The call's attempt.
        records: The call record's sink (None: calls are not recorded).
    """

    def __init__(
        self, *, call_id: str, attempt: AttemptUpdates, records: RecordSink | None = None
    ) -> None:
        super().__init__(observe_every_push=False)
        self._call_id = call_id
        self._attempt = attempt
        self._records = records
        self._writes: asyncio.Task[None] | None = None

    def _later(self, write: Callable[[], Awaitable[None]], what: str) -> None:
        """Run ``write`` after the writes before it, in a task the call's end does not cancel."""
        previous = self._writes

        async def run() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            try:
                await write()
            except Exception as e:  # noqa: BLE001 - the call goes on
                logger.warning(f"outbound outcome: {what} not written ({type(e).__name__})")

        self._writes = asyncio.create_task(run(), name="outbound-outcome-write")

    async def cleanup(self) -> None:
        """Wait for the attempt's writes (they were started when their frames were seen)."""
        await super().cleanup()
        if self._writes is not None:
            await asyncio.wait([self._writes])

    async def on_push_frame(self, data: FramePushed) -> None:
        """Act on the outbound frames (never raises)."""
        frame = data.frame
        try:
            if isinstance(frame, OutcomeFrame):
                self._update(CallUpdate(self._call_id, disposition=frame.disposition or None))
                disposition = frame.disposition
                self._later(lambda: self._attempt.outcome(disposition), "outcome")
            elif isinstance(frame, DoNotCallFrame):
                reason = frame.reason
                self._later(lambda: self._attempt.do_not_call(reason), "do-not-call")
            elif isinstance(frame, MachineVerdictFrame):
                amd_ms = clean_number(frame.decided_after_s * 1000)
                self._update(
                    CallUpdate(
                        self._call_id,
                        amd_verdict=frame.verdict or None,
                        amd_ms=round(amd_ms, 1) if amd_ms is not None else None,
                    )
                )
                verdict = frame.verdict
                if verdict and frame.source != "provider":
                    self._later(lambda: self._attempt.machine_verdict(verdict), "verdict")
        except Exception as e:  # noqa: BLE001 - the call goes on
            logger.warning(
                f"outbound outcome: skipped a {type(frame).__name__} ({type(e).__name__})"
            )

    def _update(self, update: CallUpdate) -> None:
        if self._records is not None:
            self._records.update_call(update)
