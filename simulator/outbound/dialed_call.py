"""One outbound call the fake placed: its request, status history, webhooks and callee log."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from simulator.fake_twilio_calls import FakeCall
from simulator.outbound.callbacks import CallbackDelivery
from simulator.outbound.callee import Callee, CalleeLog
from simulator.phone import TwilioCallEmulator

FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


@dataclass
class DialedCall:
    """One outbound call the fake placed, and everything that happened to it.

    Parameters:
        sid: The CallSid (``CA`` + 32 hex).
        to: The callee's number; from_number: the caller ID.
        form: The create request's fields (the last value of a repeated one).
        status_events: StatusCallbackEvent values asked for.
        status: The current status (``queued`` ... ``completed``/``no-answer``...).
        history: Each status with its ``time.monotonic()``.
        deliveries: Every webhook made for the call (answer, status, amd), in order.
        answered_by: The AMD verdict sent (sync: in the answer webhook; async: callback).
        amd_after_s: When AMD decided, seconds after answer.
        log: What the callee said and heard.
        twiml: The answer URL's reply (or the create's ``Twiml``).
        emulator: The Media Stream, once opened.
        heard_text: What the callee heard, transcribed (with a transcriber).
        message_text: The bot's words after the beep, transcribed (voicemail).
        error: Why the call broke down in the fake (exception name), else None.
    """

    sid: str
    account_sid: str
    to: str
    from_number: str
    form: dict[str, str]
    status_events: tuple[str, ...]
    callee: Callee
    record: FakeCall
    status: str = "queued"
    history: list[tuple[str, float]] = field(default_factory=list)
    deliveries: list[CallbackDelivery] = field(default_factory=list)
    answered_at: float | None = None
    ended_at: float | None = None
    answered_by: str | None = None
    amd_after_s: float | None = None
    log: CalleeLog = field(default_factory=CalleeLog)
    twiml: str = ""
    emulator: TwilioCallEmulator | None = None
    heard_text: str | None = None
    message_text: str | None = None
    error: str | None = None
    hang_up_requested: asyncio.Event = field(default_factory=asyncio.Event)
    sequence: int = 0
    done: bool = False
    """Whether everything is over: final status, its callback, the transcripts."""

    @property
    def machine_detection(self) -> str | None:
        """``Enable``, ``DetectMessageEnd`` or None."""
        return self.form.get("MachineDetection") or None

    @property
    def async_amd(self) -> bool:
        """Whether AMD reports by callback (the call connects at once)."""
        return self.form.get("AsyncAmd", "").lower() == "true"

    @property
    def timeout_s(self) -> float:
        """How long it may ring (``Timeout``, default 60)."""
        return float(self.form.get("Timeout") or 60)

    @property
    def finished(self) -> bool:
        """Whether the call reached a final status."""
        return self.status in FINAL_STATUSES and self.ended_at is not None

    @property
    def duration_s(self) -> int:
        """Answered to ended, whole seconds rounded up (Twilio's ``CallDuration``)."""
        if self.answered_at is None or self.ended_at is None:
            return 0
        return max(1, int(-(-(self.ended_at - self.answered_at) // 1)))

    def events_sent(self) -> list[str]:
        """The ``CallStatus`` of each status callback sent, in order."""
        return [d.params.get("CallStatus", "") for d in self.deliveries if d.kind == "status"]

    def set_status(self, status: str) -> None:
        """Move to ``status`` (kept in the REST record too)."""
        self.status = status
        self.history.append((status, time.monotonic()))
        self.record.status = status
        now = datetime.now(UTC)
        if status == "in-progress":
            self.record.start_time = now
        if status in FINAL_STATUSES:
            self.ended_at = self.ended_at or time.monotonic()
            self.record.end_time = now
            self.record.duration_s = self.duration_s
