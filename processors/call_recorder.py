"""The call recorder: a Pipecat observer that writes one structured record per call.

It watches the frames of one call and saves, turn by turn, what the caller said,
what the NLU decided, what the bot said, whether the caller barged in and how
long the turn took; at the end it saves the outcome and why the call ended.

The turns are built by :class:`~processors.call_turns.CallTurns` and saved when they close
(the next turn starts, the bot stops speaking, or the call ends); saving only queues a
write for the store's writer thread, so nothing here waits for a database. A crash or a
killed process loses at most the turn in flight. A frame the recorder cannot make sense
of is skipped and logged (by call id and frame type only), never raised into the pipeline.

Frames read (each once: the observer asks for first pushes only):

- ``StartFrame``: the call started.
- ``TranscriptionFrame``: the caller's final words (opens a caller turn).
- ``NLUResultFrame``: the NLU decision (caller text, intent, confidence, band...).
- ``BotReplyFrame``: which intent the reply answered; whether it ends the call.
- ``TTSSpeakFrame``, ``LLMTextFrame``: what the bot said.
- ``BotStartedSpeakingFrame`` / ``BotStoppedSpeakingFrame`` / ``InterruptionFrame``:
  speaking, and barge-in while speaking.
- ``EndWorkerFrame``, ``EndFrame``, ``CancelFrame``, ``CancelWorkerFrame``: the end
  and its reason; a fatal ``ErrorFrame``: a failed call.
- ``EscalationFrame`` / ``TransferResultFrame``: the escalation (trigger, reason,
  summary) and the transfer's result; ``CallerRecordFrame``: the CRM prefetch time.
- ``ActionWithdrawnFrame``: a goodbye or a hand-off on a turn was withdrawn before it was
  carried out (the caller went on): the call neither ends on it nor counts as escalated
  (an escalation already stored stays, its transfer result ``withdrawn``).

What is stored of the caller's personal data (their words, the bot's, entities, the
escalation summary) is decided by the personal-data policy given
(:mod:`integrations.storage.personal_data`; masked by default), before anything reaches
the store or its spool file.

The turn's latency breakdown comes from the pipeline's latency observer through
:meth:`CallRecorder.add_latency`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    CancelWorkerFrame,
    EndFrame,
    EndWorkerFrame,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    LLMTextFrame,
    StartFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed

from integrations.storage.caller_id import RedactedCallerId
from integrations.storage.personal_data import MaskPersonalData, PersonalDataPolicy
from integrations.storage.records import (
    CallEnd,
    CallStart,
    CallUpdate,
    Escalation,
    clean_number,
    clean_text,
    json_safe,
    utcnow,
)
from processors.call_outcome import CallFacts, OutcomePolicy, RecordSink
from processors.call_turns import CallTurns
from processors.escalation import TURN_TRIGGERS
from processors.frames import (
    END_CALL,
    HAND_OFF,
    ActionWithdrawnFrame,
    BotReplyFrame,
    CallerRecordFrame,
    EscalationFrame,
    NLUResultFrame,
    TransferResultFrame,
)
from processors.outbound_call import OutboundCall

HUNG_UP = "caller hung up"
ENDED = "call ended"
PIPELINE_ERROR = "pipeline error"
WITHDRAWN = "withdrawn"
"""The transfer result of a hand-off the caller withdrew by going on (processors/action_hold.py)."""
_FAILURE_MARKERS = ("fatal error", "can no longer do its job")
"""Reasons Pipecat's worker gives when it cancels a call because of an error."""


class CallRecorder(BaseObserver):
    """Builds and saves one call's record from the frames it observes."""

    def __init__(
        self,
        sink: RecordSink,
        *,
        call_id: str,
        transport: str,
        caller: str | None = None,
        direction: str = "inbound",
        agent: str | None = None,
        personal_data: PersonalDataPolicy | None = None,
        outcome_policy: OutcomePolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        provider_call_id: str | None = None,
        outbound: OutboundCall | None = None,
        **kwargs: Any,
    ):
        """Record one call.

        Args:
            sink: Where records go (queued writes; must not block).
            call_id: Our id for the call.
            transport: ``twilio``, ``webrtc``, ``daily`` or ``livekit``.
            caller: The caller's identity, already in its stored form (hashed or
                redacted by the caller-id policy).
            direction: ``inbound`` or ``outbound``.
            agent: The agent's name.
            personal_data: What the stored turns and escalation summary keep of the
                caller's personal data (default: masked, caller ids redacted).
            outcome_policy: Decides the outcome (default :class:`OutcomePolicy`).
            clock: UTC clock (tests).
            provider_call_id: The provider's id of the call (Twilio ``CallSid``).
            outbound: The outbound call this is (campaign, contact, attempt), if one.
            **kwargs: Passed to ``BaseObserver``.
        """
        super().__init__(observe_every_push=False, **kwargs)
        self._sink = sink
        self._start = CallStart(
            call_id=call_id,
            transport=transport,
            direction=direction,
            caller=caller,
            agent=agent,
            provider_call_id=provider_call_id,
            campaign_id=outbound.campaign_id if outbound else None,
            contact_id=outbound.contact_id if outbound else None,
            attempt=outbound.attempt if outbound else None,
        )
        self._policy = outcome_policy or OutcomePolicy()
        self._personal = personal_data or MaskPersonalData(RedactedCallerId())
        self._clock = clock
        self._started = False
        self._ended = False
        self._facts = CallFacts()
        self._turns = CallTurns(
            sink,
            call_id=call_id,
            personal_data=self._personal,
            facts=self._facts,
            clock=clock,
            on_turn=self.start,
        )
        self._end_reason: str | None = None
        self._ended_at: datetime | None = None
        self._escalation: Escalation | None = None
        self._crm_recorded = False
        self._handlers: list[tuple[type[Frame], Callable[[Any], None]]] = [
            (StartFrame, lambda _f: self.start()),
            (TranscriptionFrame, self._turns.on_transcription),
            (NLUResultFrame, self._turns.on_nlu),
            (BotReplyFrame, self._turns.on_reply),
            (TTSSpeakFrame, self._turns.on_speak),
            (LLMTextFrame, self._turns.on_llm_text),
            (BotStartedSpeakingFrame, self._turns.on_bot_started),
            (BotStoppedSpeakingFrame, self._turns.on_bot_stopped),
            (InterruptionFrame, self._turns.on_interruption),
            (EndWorkerFrame, self._on_end_request),
            (CancelWorkerFrame, self._on_end_request),
            (EndFrame, lambda f: self.end(_reason(f, ENDED))),
            (CancelFrame, self._on_cancel),
            (ErrorFrame, self._on_error),
            (EscalationFrame, self._on_escalation_frame),  # TransferResultFrame too
            (ActionWithdrawnFrame, self._on_action_withdrawn),
            (CallerRecordFrame, self._on_caller_record_frame),
        ]

    @property
    def call_id(self) -> str:
        """The recorded call's id."""
        return self._start.call_id

    # Observer

    async def on_push_frame(self, data: FramePushed) -> None:
        """Fold one frame into the record (never raises)."""
        self.observe(data.frame)

    async def cleanup(self) -> None:
        """Close the record when the pipeline is torn down."""
        await super().cleanup()
        self.finish()

    def observe(self, frame: Frame) -> None:
        """Fold one frame into the record (never raises)."""
        try:
            for frame_type, handler in self._handlers:
                if isinstance(frame, frame_type):
                    handler(frame)
                    return
        except Exception as e:  # noqa: BLE001 - a bad frame must never break the call
            logger.warning(f"recorder skipped a {type(frame).__name__} ({type(e).__name__})")

    # Call-level facts (methods for processors and the pipeline)

    def start(self) -> None:
        """Record the call start (once)."""
        if self._started:
            return
        self._started = True
        self._start.started_at = self._clock()
        self._sink.start_call(self._start)

    def add_latency(self, total_ms: float, stages_ms: dict[str, float], kind: str = "turn") -> None:
        """Attach a latency measurement (caller stop → first bot audio) to its turn.

        Args:
            total_ms: The turn's total latency.
            stages_ms: Its breakdown by stage (``processors.turn_latency`` names).
            kind: ``greeting`` for the bot's first line, ``turn`` otherwise.
        """
        try:
            self._turns.add_latency(total_ms, stages_ms, kind)
        except Exception as e:  # noqa: BLE001
            logger.warning(f"recorder skipped a latency ({type(e).__name__})")

    def record_crm_prefetch(self, elapsed_ms: float) -> None:
        """Record how long the CRM caller-record prefetch took."""
        self.start()
        self._sink.update_call(
            CallUpdate(call_id=self.call_id, crm_prefetch_ms=clean_number(elapsed_ms))
        )

    def record_escalation(
        self,
        *,
        trigger: str | None = None,
        reason: str | None = None,
        summary: dict[str, Any] | None = None,
        transfer_result: str | None = None,
    ) -> None:
        """Record an escalation; fields given again later (e.g. the transfer result) update it."""
        self.start()
        current = self._escalation or Escalation(at=self._clock())
        self._escalation = Escalation(
            trigger=clean_text(trigger) if trigger else current.trigger,
            reason=clean_text(reason) if reason else current.reason,
            summary=self._personal.summary(json_safe(summary), self._turns.names)
            if summary
            else current.summary,
            transfer_result=clean_text(transfer_result)
            if transfer_result
            else current.transfer_result,
            at=current.at,
        )
        self._facts.escalated = True
        self._sink.update_call(CallUpdate(call_id=self.call_id, escalation=self._escalation))
        if self._ended:
            self._save_end()

    def fail(self, reason: str) -> None:
        """Mark the call failed (a pipeline error)."""
        self._facts.failed = True
        self._end_reason = reason
        if self._ended:
            self._save_end()

    def end(self, reason: str) -> None:
        """Close the record: save open turns and the outcome (later calls only update turns)."""
        if self._ended:
            return
        self.start()
        self._ended = True
        self._end_reason = self._end_reason or reason
        self._ended_at = self._clock()
        self._turns.close()
        self._save_end()

    def finish(self) -> None:
        """End the record if no end frame was seen, and save anything still unsaved."""
        try:
            if not self._ended:
                self.end(self._end_reason or ENDED)
            self._turns.save_all()
        except Exception as e:  # noqa: BLE001
            logger.warning(f"recorder could not finish ({type(e).__name__})")

    # Frame handlers

    def _on_end_request(self, frame: Frame) -> None:
        reason = getattr(frame, "reason", None)
        if reason and self._end_reason is None:
            self._end_reason = clean_text(reason)

    def _on_cancel(self, frame: CancelFrame) -> None:
        reason = str(getattr(frame, "reason", "") or "")
        if any(marker in reason for marker in _FAILURE_MARKERS):
            self.fail(PIPELINE_ERROR)  # the error text itself is not recorded: it may quote callers
        self.end(_reason(frame, HUNG_UP))

    def _on_error(self, frame: ErrorFrame) -> None:
        if getattr(frame, "fatal", False):
            self.fail(PIPELINE_ERROR)

    def _on_escalation_frame(self, frame: EscalationFrame) -> None:
        result = _text_attr(frame, "transfer_result")
        if isinstance(frame, TransferResultFrame) and not result:
            result = "completed" if frame.ok else "failed"
        self.record_escalation(
            trigger=_text_attr(frame, "trigger"),
            reason=_text_attr(frame, "reason"),
            summary=frame.summary if isinstance(frame.summary, dict) else None,
            transfer_result=result,
        )

    def _on_action_withdrawn(self, frame: Frame) -> None:
        if self._ended or not isinstance(frame, ActionWithdrawnFrame):
            return
        if frame.withdraws(END_CALL):
            self._facts.goodbye = False
            if not self._facts.failed:
                self._end_reason = None  # the goodbye's: the call did not end on it
        escalation = self._escalation
        if (
            frame.withdraws(HAND_OFF)
            and escalation is not None
            and escalation.transfer_result is None
            and escalation.trigger in TURN_TRIGGERS
        ):
            self._escalation = None
            self._facts.escalated = False
            # the store already holds it: mark it withdrawn there rather than leave it open
            withdrawn = replace(escalation, transfer_result=WITHDRAWN)
            self._sink.update_call(CallUpdate(call_id=self.call_id, escalation=withdrawn))

    def _on_caller_record_frame(self, frame: CallerRecordFrame) -> None:
        record = frame.record
        if record is not None:
            self._turns.set_names(tuple(n for n in (record.first_name, record.last_name) if n))
        if frame.update or self._crm_recorded:
            return  # only the prefetch's own answer carries the prefetch time
        value = clean_number(frame.elapsed_ms)
        if value is not None:
            self._crm_recorded = True
            self.record_crm_prefetch(value)

    def _save_end(self) -> None:
        started = self._start.started_at
        ended_at = self._ended_at or self._clock()
        self._sink.end_call(
            CallEnd(
                call_id=self.call_id,
                ended_at=ended_at,
                duration_secs=round(max((ended_at - started).total_seconds(), 0.0), 3),
                outcome=self._policy.decide(self._facts).value,
                end_reason=clean_text(self._end_reason or ENDED) or ENDED,
                turn_count=self._facts.caller_turns or self._turns.caller_turns(),
                primary_intent=self._turns.primary_intent,
            )
        )


def _reason(frame: Frame, default: str) -> str:
    reason = getattr(frame, "reason", None)
    return clean_text(reason) or default if reason else default


def _text_attr(frame: Frame, name: str) -> str | None:
    value = getattr(frame, name, None)
    return None if value is None else str(getattr(value, "value", value))
