"""CRM prefetch: fetch the caller's record at call start, concurrently with the greeting.

The lookup starts when the pipeline is set up (before the first frame), from the caller
identity the transport gave (Twilio ``From``, WebRTC ``?caller=``, Daily dial-in caller id)
or later from a :class:`~processors.frames.CallerIdentityFrame` or an RTVI client message
``caller-identity`` (browser clients). Only the greeting waits for it, and briefly: a
greeting that comes while the lookup is in flight is held up to ``greeting_wait_ms``
(150 ms by default; a local CRM answers in 10-30 ms) so the caller is greeted by name
rather than by whichever task the event loop happened to run first. Otherwise the
record is pushed downstream as a :class:`~processors.frames.CallerRecordFrame` the moment
it arrives (and added to the LLM context). Past the budget (500 ms by default) the call
goes on without it, and a late answer is still used when it comes. The latency is logged
per call and carried on the frame.

The same processor performs the CRM write-backs the dialogue asks for
(:class:`~processors.frames.CrmUpdateFrame`, pushed upstream) and logs the call's outcome
to the customer's record when the call ends. A write-back the dialogue's line announces
(``after_line``) waits for that line to be heard (the action hold's
:class:`~processors.frames.ActionReleasedFrame`); the caller going on over the line
withdraws it (:class:`~processors.frames.ActionWithdrawnFrame`); a call that ends first
(the caller hung up during the line) still has it written. Log lines carry the call id,
the customer id and timings only.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from loguru import logger
from pipecat.frames.frames import CancelFrame, EndFrame, Frame, StartFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor, FrameProcessorSetup
from pipecat.processors.frameworks.rtvi import RTVIClientMessageFrame

from integrations.crm.base import CRM, CallerRecord, CallOutcome, CRMError
from processors.caller_context import context_note
from processors.frames import (
    WRITE_BACK,
    ActionReleasedFrame,
    ActionWithdrawnFrame,
    CallerIdentityFrame,
    CallerRecordFrame,
    CrmAction,
    CrmUpdateFrame,
    GreetingFrame,
    NLUResultFrame,
    PrefetchStatus,
    TransferResultFrame,
)

DEFAULT_BUDGET_MS = 500.0
GREETING_WAIT_MS = 150.0
IDENTITY_MESSAGE = "caller-identity"
"""RTVI client message (``{"t": "caller-identity", "d": {"caller": ...}}``) naming the caller."""
MAX_LOOKUP_S = 10.0
"""A lookup still running after this long is abandoned."""
WRITE_TIMEOUT_S = 10.0
_SKIP_INTENTS = frozenset({"affirm", "deny", "out_of_scope", "dtmf_entry"})
_background: set[asyncio.Task[Any]] = set()
"""Write-backs still running after their call ended (kept so they finish)."""


class CrmPrefetchProcessor(FrameProcessor):
    """Looks the caller up at call start and keeps the CRM in step with the call."""

    def __init__(
        self,
        crm: CRM | None,
        caller: str | None,
        *,
        call_id: str,
        budget_ms: float = DEFAULT_BUDGET_MS,
        greeting_wait_ms: float = GREETING_WAIT_MS,
        context: LLMContext | None = None,
        **kwargs: Any,
    ):
        """Prepare the prefetch (it starts when the pipeline is set up).

        Args:
            crm: The CRM adapter (None: no CRM; the processor only passes frames).
            caller: The caller's identity, if known at call start. Never logged.
            call_id: For log lines.
            budget_ms: How long the call is willing to wait before going on without.
            greeting_wait_ms: How long a greeting waits for a lookup in flight.
            context: The call's LLM context; the record is added to it as a system note.
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._crm = crm
        self._caller = caller
        self._call_id = call_id
        self._budget_ms = budget_ms
        self._greeting_wait_ms = greeting_wait_ms
        self._held_greeting: GreetingFrame | None = None
        self._greeting_timer: asyncio.Task[None] | None = None
        self._context = context
        self._lookup: asyncio.Task[None] | None = None
        self._budget_timer: asyncio.Task[None] | None = None
        self._lookup_started = 0.0
        self._started = False
        self._ready: CallerRecordFrame | None = None
        self._record: CallerRecord | None = None
        self._intents: list[str] = []
        self._transfer: TransferResultFrame | None = None
        self._call_started = datetime.now()
        self._outcome_logged = False
        self._after_line: list[CrmUpdateFrame] = []
        """Write-backs waiting for the line that announces them."""
        self.latency_ms: float | None = None
        """Call start to the CRM's answer (None until it answers)."""

    @property
    def record(self) -> CallerRecord | None:
        """The caller's record, once known."""
        return self._record

    async def setup(self, setup: FrameProcessorSetup) -> None:
        """Start the lookup as soon as the call's pipeline exists."""
        await super().setup(setup)
        if self._caller:
            self._begin(self._caller)

    async def cleanup(self) -> None:
        """Stop a lookup still in flight."""
        await super().cleanup()
        for task in (self._lookup, self._budget_timer, self._greeting_timer):
            if task is not None and not task.done():
                task.cancel()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Deliver the record when it arrives; perform write-backs; log the outcome at the end."""
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._started = True
            if self._ready is not None:
                await self._deliver(self._ready)
            return
        if isinstance(frame, GreetingFrame) and self._lookup_in_flight():
            self._held_greeting = frame
            self._greeting_timer = asyncio.get_running_loop().create_task(
                self._release_greeting_after(self._greeting_wait_ms / 1000)
            )
            return
        if isinstance(frame, CallerIdentityFrame):
            if frame.caller and self._lookup is None:
                self._begin(frame.caller)
            return  # consumed: nobody else needs the identity
        if isinstance(frame, RTVIClientMessageFrame) and frame.type == IDENTITY_MESSAGE:
            caller = frame.data.get("caller") if isinstance(frame.data, dict) else None
            if isinstance(caller, str) and caller.strip() and self._lookup is None:
                self._begin(caller.strip()[:256])
            return
        if isinstance(frame, CrmUpdateFrame) and direction is FrameDirection.UPSTREAM:
            if frame.after_line:
                self._after_line.append(frame)
            else:
                self._spawn(self._update(frame))
            return
        if isinstance(frame, NLUResultFrame) and frame.intent not in _SKIP_INTENTS:
            self._intents.append(frame.intent)
        elif isinstance(frame, TransferResultFrame) and direction is FrameDirection.UPSTREAM:
            self._transfer = frame
        elif isinstance(frame, ActionReleasedFrame) and frame.action == WRITE_BACK:
            self._write_waiting()
        elif isinstance(frame, ActionWithdrawnFrame) and frame.withdraws(WRITE_BACK):
            if self._after_line:
                logger.info(f"CRM write-back withdrawn ({len(self._after_line)}): caller went on")
                self._after_line.clear()
        elif isinstance(frame, EndFrame | CancelFrame):
            self._write_waiting()  # the caller hung up during the line: it was decided
            self._log_outcome(frame)
        elif isinstance(frame, CallerRecordFrame) and frame.update and frame.record is not None:
            self._record = frame.record
        await self.push_frame(frame, direction)

    # Prefetch

    def _begin(self, caller: str) -> None:
        if self._crm is None:
            return
        self._lookup_started = time.perf_counter()
        self._lookup = asyncio.get_running_loop().create_task(
            self._fetch(caller), name=f"crm-prefetch-{self._call_id}"
        )
        self._budget_timer = asyncio.get_running_loop().create_task(self._watch_budget())

    async def _watch_budget(self) -> None:
        await asyncio.sleep(self._budget_ms / 1000)
        if self.latency_ms is None:
            logger.info(
                f"CRM prefetch over its {self._budget_ms:.0f} ms budget; "
                "going on without it (a late answer will still be used)"
            )

    async def _fetch(self, caller: str) -> None:
        assert self._crm is not None
        record: CallerRecord | None = None
        try:
            record = await asyncio.wait_for(self._crm.lookup(caller), MAX_LOOKUP_S)
            status = PrefetchStatus.FOUND if record is not None else PrefetchStatus.NOT_FOUND
            detail = ""
        except (CRMError, TimeoutError) as e:
            status = PrefetchStatus.ERROR
            detail = f" ({e})" if isinstance(e, CRMError) else f" (no answer in {MAX_LOOKUP_S:g} s)"
        except Exception as e:  # noqa: BLE001 - a CRM must never break the call
            status = PrefetchStatus.ERROR
            detail = f" ({type(e).__name__})"
        elapsed = round((time.perf_counter() - self._lookup_started) * 1000, 1)
        self.latency_ms = elapsed
        late = elapsed > self._budget_ms
        log = logger.bind(customer_id=record.customer_id) if record else logger
        log.info(
            f"CRM prefetch {status.value} in {elapsed} ms via "
            f"{self._crm.name}{' (late, used anyway)' if late and record else ''}{detail}"
        )
        frame = CallerRecordFrame(record=record, status=status, elapsed_ms=elapsed, late=late)
        if self._started:
            await self._deliver(frame)
        else:
            self._ready = frame

    async def _deliver(self, frame: CallerRecordFrame) -> None:
        self._ready = None
        self._record = frame.record
        if frame.record is not None and self._context is not None:
            self._context.add_message({"role": "system", "content": context_note(frame.record)})
        await self.push_frame(frame)
        await self._release_greeting()

    def _lookup_in_flight(self) -> bool:
        return self._lookup is not None and self.latency_ms is None

    async def _release_greeting_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._greeting_timer = None
        await self._release_greeting()

    async def _release_greeting(self) -> None:
        greeting, self._held_greeting = self._held_greeting, None
        if greeting is None:
            return
        if self._greeting_timer is not None:
            timer, self._greeting_timer = self._greeting_timer, None
            timer.cancel()
        await self.push_frame(greeting)

    # Write-backs

    def _write_waiting(self) -> None:
        waiting, self._after_line = self._after_line, []
        for update in waiting:
            self._spawn(self._update(update))

    async def _update(self, frame: CrmUpdateFrame) -> None:
        if self._crm is None or not frame.customer_id:
            logger.info(f"CRM {frame.action.value} skipped (no record)")
            return
        params = frame.params
        log = logger.bind(customer_id=frame.customer_id)
        try:
            if frame.action is CrmAction.MOVE_APPOINTMENT:
                starts_at = datetime.fromisoformat(str(params["starts_at"]))
                await self._crm.move_appointment(
                    frame.customer_id, str(params["appointment_id"]), starts_at
                )
            elif frame.action is CrmAction.CANCEL_APPOINTMENT:
                await self._crm.cancel_appointment(frame.customer_id, str(params["appointment_id"]))
            elif frame.action is CrmAction.CONFIRM_APPOINTMENT:
                await self._crm.confirm_appointment(
                    frame.customer_id, str(params["appointment_id"])
                )
            elif frame.action is CrmAction.REQUEST_CALLBACK:
                note = str(params.get("note", "Caller asked for a callback"))
                await self._crm.add_pending_action(frame.customer_id, "callback", note)
        except (CRMError, KeyError, ValueError, TimeoutError) as e:
            log.warning(f"CRM {frame.action.value} failed ({type(e).__name__})")
            return
        log.info(f"CRM {frame.action.value} done")

    def _log_outcome(self, frame: Frame) -> None:
        if self._outcome_logged or self._crm is None or self._record is None:
            return
        self._outcome_logged = True
        if self._transfer is not None:
            outcome = "transferred" if self._transfer.ok else "transfer_failed"
        else:
            outcome = "completed" if isinstance(frame, EndFrame) else "caller_hung_up"
        intents = tuple(dict.fromkeys(self._intents))
        summary = "AI agent call"
        if intents:
            summary += ": " + ", ".join(i.replace("kb:", "").replace("_", " ") for i in intents)
        if self._transfer is not None:
            summary += f"; escalated ({self._transfer.trigger})"
        call_outcome = CallOutcome(
            call_id=self._call_id,
            outcome=outcome,
            intents=intents,
            summary=summary,
            started_at=self._call_started,
            duration_s=(datetime.now() - self._call_started).total_seconds(),
        )
        customer = self._record.customer_id
        self._spawn(self._log_call(customer, call_outcome))

    async def _log_call(self, customer_id: str, outcome: CallOutcome) -> None:
        assert self._crm is not None
        try:
            await asyncio.wait_for(self._crm.log_call(customer_id, outcome), WRITE_TIMEOUT_S)
        except (CRMError, TimeoutError) as e:
            logger.bind(customer_id=customer_id).warning(
                f"CRM call log failed ({type(e).__name__})"
            )
            return
        logger.bind(customer_id=customer_id).info(f"CRM call logged ({outcome.outcome})")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        _background.add(task)
        task.add_done_callback(_background.discard)
