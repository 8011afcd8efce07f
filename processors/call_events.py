"""Per-call turn events: what the agent decided, turn by turn, as small typed records.

:class:`CallEventObserver` watches one call's frames and hands each event to a
``publish(type, data)`` callable (the server's per-call event bus,
``bot/operator/events.py``). Events carry decisions and measurements only, never caller
data: no transcripts, no digits, no numbers, no reply text.

Event types and their data:

- ``user_started`` / ``user_stopped``: the caller's turn began / ended (turn strategies).
- ``nlu``: ``intent``, ``band``, ``confidence``, ``runner_up``, ``path``, ``elapsed_ms``,
  ``entity_kinds`` (names only), ``unsure`` (the words were doubtful) and
  ``heard_confidence`` (the recogniser's, None when unknown).
- ``reply``: ``intent``, ``ends_call``, ``hands_off`` (the dialogue's decision).
- ``escalation``: ``trigger``, ``reason``.
- ``transfer``: ``ok``, ``method``, ``error``, ``trigger_to_request_ms``, and its phases
  ``line_heard_ms`` (trigger to the hand-off line heard), ``request_ms`` (the transfer
  request itself), ``screen_pop_ms`` (summary delivered to the desktop; None if not).
- ``interruption``: the caller barged in while the bot was speaking.
- ``resumed``: that was only a backchannel ("mhm"): the bot picks its reply up again.
- ``bot_started`` / ``bot_stopped``: bot speech at the transport.
- ``latency``: ``kind`` (``greeting``/``turn``), ``total_ms``, ``stages_ms`` (published by
  the pipeline's latency handler through :meth:`CallEventObserver.publish`).
- ``ended``: ``how``: ``end`` (the agent ended the call) or ``cancel`` (hang-up, error).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed

from processors.barge_in import ReplyResumedFrame
from processors.frames import BotReplyFrame, EscalationFrame, NLUResultFrame, TransferResultFrame

Publish = Callable[[str, dict[str, Any]], None]


def _value(x: Any) -> Any:
    return getattr(x, "value", x)


def _ms(x: float | None) -> float | None:
    return None if x is None else round(float(x), 1)


class CallEventObserver(BaseObserver):
    """Publishes one call's turn events (first push of each frame only)."""

    def __init__(self, publish: Publish, *, call_id: str = "", **kwargs: Any):
        """Publish through ``publish(type, data)``; ``call_id`` only labels warnings."""
        super().__init__(observe_every_push=False, **kwargs)
        self._publish = publish
        self._call_id = call_id
        self._bot_speaking = False
        self._user_speaking = False
        self._interrupted = False
        self._ended = False

    def publish(self, kind: str, data: dict[str, Any] | None = None) -> None:
        """Publish an event (never raises)."""
        try:
            self._publish(kind, data or {})
        except Exception as e:  # noqa: BLE001 - diagnostics must never break a call
            logger.warning(f"event {kind} not published ({type(e).__name__})")

    async def on_push_frame(self, data: FramePushed) -> None:
        """Turn a frame into an event, if it is one of interest."""
        event = self.event_for(data.frame)
        if event is not None:
            self.publish(*event)

    def event_for(self, frame: Frame) -> tuple[str, dict[str, Any]] | None:
        """The event a frame makes (None for most frames)."""
        if isinstance(frame, NLUResultFrame):
            return "nlu", {
                "intent": frame.intent,
                "band": _value(frame.band),
                "confidence": round(float(frame.confidence), 3),
                "runner_up": frame.runner_up,
                "path": _value(frame.path),
                "elapsed_ms": round(float(frame.elapsed_ms), 1),
                "entity_kinds": sorted(str(k) for k in (frame.entities or {})),
                "unsure": frame.unsure,
                "heard_confidence": (
                    None if frame.heard_confidence is None else round(frame.heard_confidence, 3)
                ),
            }
        if isinstance(frame, BotReplyFrame):
            return "reply", {
                "intent": frame.intent,
                "ends_call": frame.ends_call,
                "hands_off": frame.hands_off,
                "offered": list(frame.offered),
            }
        if isinstance(frame, TransferResultFrame):
            return "transfer", {
                "ok": frame.ok,
                "method": frame.method,
                "error": frame.error,
                "trigger_to_request_ms": round(float(frame.trigger_to_request_ms), 1),
                "line_heard_ms": _ms(frame.line_heard_ms),
                "request_ms": _ms(frame.request_ms),
                "screen_pop_ms": _ms(frame.screen_pop_ms),
            }
        if isinstance(frame, EscalationFrame):
            return "escalation", {"trigger": frame.trigger, "reason": frame.reason}
        if isinstance(frame, InterruptionFrame):
            if not self._bot_speaking or self._interrupted:
                return None  # every caller turn interrupts; only a cut reply is news
            self._interrupted = True
            return "interruption", {}
        if isinstance(frame, ReplyResumedFrame):
            return "resumed", {}
        # Pipecat broadcasts the speaking frames both ways (two frames for one change):
        # an event is published for the change of state, once.
        if isinstance(frame, BotStartedSpeakingFrame):
            if self._bot_speaking:
                return None
            self._bot_speaking = True
            self._interrupted = False
            return "bot_started", {}
        if isinstance(frame, BotStoppedSpeakingFrame):
            if not self._bot_speaking:
                return None
            self._bot_speaking = False
            return "bot_stopped", {}
        if isinstance(frame, UserStartedSpeakingFrame):
            if self._user_speaking:
                return None
            self._user_speaking = True
            return "user_started", {}
        if isinstance(frame, UserStoppedSpeakingFrame):
            if not self._user_speaking:
                return None
            self._user_speaking = False
            return "user_stopped", {}
        if isinstance(frame, EndFrame | CancelFrame) and not self._ended:
            self._ended = True
            return "ended", {"how": "end" if isinstance(frame, EndFrame) else "cancel"}
        return None
