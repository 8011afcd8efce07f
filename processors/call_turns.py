"""A call record's turns: what the caller said, what the NLU decided, what the bot said.

:class:`CallTurns` builds one call's turns from the frames the call recorder
(:mod:`processors.call_recorder`) hands it: a caller turn opens on the caller's final
words (or an NLU decision), a bot turn on the bot's first words (the greeting, a prompt);
each turn gets its interruptions and, later, its latency. Turns are saved when they close
(the next turn starts, the bot stops speaking, or the call ends); saving only queues a
write, and what is stored of the caller's personal data is the policy's.

The facts the call's outcome is decided on (caller turns, the last band, an action, a
goodbye) are kept in the recorder's :class:`~processors.call_outcome.CallFacts`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pipecat.frames.frames import Frame, LLMTextFrame, TranscriptionFrame, TTSSpeakFrame

from integrations.storage.personal_data import PersonalDataPolicy
from integrations.storage.records import (
    TurnKind,
    TurnRecord,
    clean_number,
    clean_text,
    json_safe,
)
from processors.call_outcome import CallFacts, RecordSink, mask_keyed_digits
from processors.frames import BotReplyFrame, NLUResultFrame


@dataclass
class _Turn:
    record: TurnRecord
    bot_speaking: bool = False
    bot_finished: bool = False
    dirty: bool = True
    bot_parts: list[str] = field(default_factory=list)
    caller_parts: list[str] = field(default_factory=list)


class CallTurns:
    """One call's turns, built from its frames and saved as they close."""

    def __init__(
        self,
        sink: RecordSink,
        *,
        call_id: str,
        personal_data: PersonalDataPolicy,
        facts: CallFacts,
        clock: Callable[[], datetime],
        on_turn: Callable[[], None],
    ):
        """Build one call's turns.

        Args:
            sink: Where the turns go (queued writes; must not block).
            call_id: The call's id.
            personal_data: What the stored turns keep of the caller's personal data.
            facts: The call's facts, updated as turns are decided and answered.
            clock: UTC clock.
            on_turn: Called before a turn opens (the recorder records the call start).
        """
        self._sink = sink
        self._call_id = call_id
        self._personal = personal_data
        self._facts = facts
        self._clock = clock
        self._on_turn = on_turn
        self._turns: list[_Turn] = []
        self._closed = False
        self.names: tuple[str, ...] = ()
        """The caller's name parts from the CRM record (masked in what is stored)."""
        self.primary_intent: str | None = None
        """The first intent acted on (a yes or a no aside)."""

    # Frames

    def on_transcription(self, frame: TranscriptionFrame) -> None:
        """The caller's final words: added to their turn, or a new one."""
        text = frame.text if isinstance(frame.text, str) else ""
        if not text.strip():
            return
        turn = self._current()
        if turn is None or turn.record.kind != TurnKind.CALLER or _answered(turn):
            if turn is not None and turn.bot_speaking:
                turn.record.interrupted = True
            turn = self._open(TurnKind.CALLER)
        turn.caller_parts.append(mask_keyed_digits(text.strip()))
        turn.record.caller_text = clean_text(" ".join(turn.caller_parts))
        turn.dirty = True

    def on_nlu(self, frame: NLUResultFrame) -> None:
        """The NLU's decision: the caller turn's text (as decided on), intent, band..."""
        turn = self._current()
        if (
            turn is None
            or turn.record.kind != TurnKind.CALLER
            or turn.record.intent is not None
            or _answered(turn)
        ):
            turn = self._open(TurnKind.CALLER)
        r = turn.record
        if isinstance(frame.text, str) and frame.text.strip():
            r.caller_text = clean_text(mask_keyed_digits(frame.text))
        r.intent = clean_text(frame.intent)
        r.confidence = clean_number(frame.confidence)
        r.runner_up = clean_text(frame.runner_up)
        r.margin = clean_number(frame.margin)
        r.band = clean_text(getattr(frame.band, "value", frame.band))
        r.path = clean_text(getattr(frame.path, "value", frame.path))
        entities = frame.entities if isinstance(frame.entities, dict) else {}
        if r.path == "dtmf" and "digits" in entities:
            # Keyed digits may be a PIN or an account number: keep only how many there were.
            entities = {**entities, "digits": "#" * len(str(entities["digits"]))}
        r.entities = json_safe(entities)
        r.nlu_ms = clean_number(frame.elapsed_ms)
        turn.dirty = True
        self._facts.caller_turns += 1
        self._facts.last_band = r.band
        if r.band == "act":
            self._facts.acted = True
            if self.primary_intent is None and r.intent not in ("affirm", "deny"):
                self.primary_intent = r.intent

    def on_reply(self, frame: BotReplyFrame) -> None:
        """Which intent the bot's reply answered; whether it ends the call."""
        turn = self._current() or self._open(self._bot_turn_kind())
        turn.record.reply_intent = clean_text(frame.intent)
        turn.dirty = True
        if frame.ends_call:
            self._facts.goodbye = True

    def on_speak(self, frame: TTSSpeakFrame) -> None:
        """A line the bot speaks (after a finished answer: a new turn)."""
        self._add_bot_text(frame.text, separator=" ", new_turn_after_speech=True)

    def on_llm_text(self, frame: LLMTextFrame) -> None:
        """A piece of the LLM's answer."""
        self._add_bot_text(frame.text, separator="", new_turn_after_speech=False)

    def on_bot_started(self, _frame: Frame) -> None:
        """The bot started speaking."""
        turn = self._current()
        if turn is not None:
            turn.bot_speaking = True

    def on_bot_stopped(self, _frame: Frame) -> None:
        """The bot stopped speaking: the exchange is saved (it survives a crash)."""
        turn = self._current()
        if turn is not None and turn.bot_speaking:
            turn.bot_speaking = False
            turn.bot_finished = True
            self._save(turn)

    def on_interruption(self, _frame: Frame) -> None:
        """The caller barged in while the bot spoke."""
        turn = self._current()
        if turn is not None and turn.bot_speaking:
            turn.record.interrupted = True
            turn.dirty = True

    # Facts from the recorder

    def set_names(self, names: tuple[str, ...]) -> None:
        """The caller's name parts (from their CRM record): every turn is saved again, masked."""
        if names and names != self.names:
            self.names = names
            for turn in self._turns:
                turn.dirty = True

    def add_latency(self, total_ms: float, stages_ms: dict[str, float], kind: str) -> None:
        """Attach a latency measurement to its turn (see ``CallRecorder.add_latency``)."""
        turn = self._latency_turn(kind)
        if turn is None:
            return
        turn.record.latency_ms = clean_number(total_ms)
        turn.record.stages_ms = {
            str(k): v for k, v in json_safe(stages_ms or {}).items() if clean_number(v) is not None
        }
        turn.dirty = True
        if self._closed:
            self._save(turn)

    def close(self) -> None:
        """The call ended: save every turn; a turn's later latency is saved at once."""
        self._closed = True
        self.save_all()

    def save_all(self) -> None:
        """Save every turn changed since it was last saved."""
        for turn in self._turns:
            self._save(turn)

    def caller_turns(self) -> int:
        """How many caller turns the call had."""
        return sum(1 for t in self._turns if t.record.kind == TurnKind.CALLER)

    # Turns

    def _current(self) -> _Turn | None:
        return self._turns[-1] if self._turns else None

    def _open(self, kind: TurnKind) -> _Turn:
        self._on_turn()
        previous = self._current()
        if previous is not None:
            self._save(previous)
        turn = _Turn(
            TurnRecord(
                call_id=self._call_id, seq=len(self._turns), kind=kind, started_at=self._clock()
            )
        )
        self._turns.append(turn)
        return turn

    def _bot_turn_kind(self) -> TurnKind:
        return TurnKind.GREETING if not self._turns else TurnKind.PROMPT

    def _add_bot_text(self, text: Any, *, separator: str, new_turn_after_speech: bool) -> None:
        if not isinstance(text, str) or not text.strip():
            return
        turn = self._current()
        if turn is None or (new_turn_after_speech and turn.bot_finished):
            turn = self._open(self._bot_turn_kind())
        turn.bot_parts.append(text.strip() if separator else text)
        turn.record.bot_text = clean_text(separator.join(turn.bot_parts).strip())
        turn.dirty = True

    def _latency_turn(self, kind: str) -> _Turn | None:
        if kind == "greeting":
            for turn in self._turns:
                if turn.record.kind == TurnKind.GREETING and turn.record.latency_ms is None:
                    return turn
        for turn in reversed(self._turns):
            if turn.record.latency_ms is None and turn.record.bot_text:
                return turn
        return None

    def _save(self, turn: _Turn) -> None:
        if turn.dirty:
            turn.dirty = False
            self._sink.save_turn(self._stored(turn.record))

    def _stored(self, record: TurnRecord) -> TurnRecord:
        """The turn as stored: personal data as the policy keeps it."""
        personal = self._personal
        return replace(
            record,
            caller_text=personal.caller_text(record.caller_text, self.names),
            bot_text=personal.bot_text(record.bot_text, self.names),
            entities=personal.entities(record.entities or {}),
        )


def _answered(turn: _Turn) -> bool:
    """Whether the bot already answered this turn (a new caller utterance starts a new turn)."""
    return bool(turn.record.bot_text) or turn.bot_finished
