"""Escalation: watch the call and decide when it must go to a person, and why.

Sits after the dialogue (and the LLM), before the transfer processor and TTS. Triggers,
each configured per agent (``escalation`` in the agent file) and each able to be switched
off:

- ``explicit_request``: an intent listed for it (``talk_to_human``; the keypad's 0 maps to
  it) at act confidence, or a phrasing that asks for a person (built-in patterns plus the
  agent's own);
- ``out_of_scope``: an intent the agent must not handle alone (e.g. ``emergency``);
- ``negative_sentiment``: a caller turn scoring at or below the calibrated threshold, or
  the lower ``understood_threshold`` for a request the agent acts on or asks about (callers
  describe their trouble in it: "..., I'm sick."); turns whose words are doubtful
  (``NLUResultFrame.unsure``) are not scored: garbled text read as negative sentiment
  handed 9 of 240 noisy calls to a person. Nor are turns heard below the bar for an
  irreversible action (``doubt``, the router's :class:`~processors.act_guard.HeardDoubt`):
  a hand-off is a transfer, decided here on the words alone ("price of a checkup" heard
  at 0.53 as "Prisoner tech up." was handed off at -0.54);
- ``failed_turns``: N not-understood (repair band) turns in a row;
- ``max_duration``: the call running past the agent's autonomous limit;
- ``server_stopping``: a :class:`~processors.frames.HandOffNowFrame` (the server's drain
  time is up), not configurable here (the agent file's ``when_stopping``).

On a trigger it says the hand-off line (or lets the dialogue's own transfer reply be it),
silences the rest of that turn, builds the structured summary and pushes an
:class:`~processors.frames.EscalationFrame` for the transfer processor and the call record.
A transfer reply from the dialogue for an intent of a trigger (e.g. after the caller confirmed
"Did you want to speak to a person?") escalates on that trigger with the reply as the
hand-off line; an ``out_of_scope`` intent (an emergency) does so even after a failed transfer,
so it is always transferred or offered the callback. A transfer reply that no trigger backs
(its trigger switched off, or a transfer already failed) is replaced with the agent's
``unavailable_line``. A hand-off on a turn's trigger that the caller talked over before its
line was heard (:class:`~processors.frames.ActionWithdrawnFrame`, see
:mod:`processors.action_hold`) is withdrawn: the processor watches the call again. Log lines
carry the call id and the trigger only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    StartFrame,
    TTSSpeakFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from integrations.sentiment import SentimentAnalyzer
from processors.act_guard import HeardDoubt
from processors.agent_definition import EscalationConfig
from processors.frames import (
    HAND_OFF,
    OUT_OF_SCOPE,
    ActionWithdrawnFrame,
    Band,
    BotReplyFrame,
    CallerRecordFrame,
    DecisionPath,
    EscalationFrame,
    HandOffNowFrame,
    NLUResultFrame,
    TransferResultFrame,
)
from processors.handoff_summary import CallObservations, build_summary
from processors.person_request import PersonRequest


class Trigger(StrEnum):
    """Why the call is escalated."""

    EXPLICIT_REQUEST = "explicit_request"
    OUT_OF_SCOPE = "out_of_scope"
    NEGATIVE_SENTIMENT = "negative_sentiment"
    FAILED_TURNS = "failed_turns"
    MAX_DURATION = "max_duration"
    SERVER_STOPPING = "server_stopping"


TURN_TRIGGERS = frozenset(
    {
        Trigger.EXPLICIT_REQUEST,
        Trigger.OUT_OF_SCOPE,
        Trigger.NEGATIVE_SENTIMENT,
        Trigger.FAILED_TURNS,
    }
)
"""Triggers decided on a caller's turn: the caller going on may withdraw them."""


@dataclass(frozen=True)
class Decision:
    """A trigger that fired, with a short reason (no caller data)."""

    trigger: Trigger
    detail: str


class _Phase(Enum):
    WATCHING = "watching"
    AWAITING_DIALOGUE_LINE = "awaiting_dialogue_line"
    ESCALATED = "escalated"
    BLOCKED = "blocked"
    """A transfer failed: no more transfers on this call."""


class EscalationProcessor(FrameProcessor):
    """Triggers the hand-off to a person and builds its summary."""

    def __init__(
        self,
        config: EscalationConfig,
        *,
        handoff_line: str,
        transfer_intents: frozenset[str],
        sentiment: SentimentAnalyzer | None,
        call_id: str,
        doubt: HeardDoubt | None = None,
        transport: str = "",
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ):
        """Configure the triggers.

        Args:
            config: The agent's escalation policy.
            handoff_line: What the bot says when it triggers a transfer itself.
            transfer_intents: Intents whose dialogue reply announces a transfer.
            sentiment: Scores caller turns (None switches the sentiment trigger off).
            call_id: For the summary and log lines.
            doubt: The recogniser's doubt (the router's): a turn whose words are too
                doubtful for an irreversible action is not read for sentiment (None: every
                turn the router is sure of is).
            transport: ``twilio``, ``webrtc``... (for the summary).
            clock: Monotonic clock (tests).
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._config = config
        self._handoff_line = handoff_line
        self._transfer_intents = transfer_intents
        self._sentiment = sentiment
        self._doubt = doubt or HeardDoubt()
        self._call_id = call_id
        self._clock = clock
        self._person = PersonRequest(config.explicit_request.phrases)
        self._seen = CallObservations(call_id=call_id, transport=transport)
        self._phase = _Phase.WATCHING
        self._phase_before = _Phase.WATCHING
        """The phase before the latest escalation (WATCHING, or BLOCKED after a failed one)."""
        self._pending: Decision | None = None
        self._failures = 0
        self._drop_texts: list[str] = []
        self._escalate_after_text: str | None = None
        self._last_text = ""
        """The latest turn's words (the turn a hand-off is decided on)."""
        self._withdrawn_text: str | None = None
        """The words of a turn whose hand-off the caller withdrew (until the next turn)."""
        self._llm_text: list[str] = []
        self._timer: asyncio.Task[None] | None = None
        self._started_at = clock()
        self.decision: Decision | None = None
        """The trigger that fired (None until one does)."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Watch turns and replies; trigger and silence as needed."""
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._started_at = self._clock()
            self._start_timer()
            return
        if isinstance(frame, EndFrame | CancelFrame):
            self._stop_timer()
            await self.push_frame(frame, direction)
            return
        if direction is FrameDirection.UPSTREAM:
            if isinstance(frame, TransferResultFrame):
                self._phase = _Phase.ESCALATED if frame.ok else _Phase.BLOCKED
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, CallerRecordFrame):
            if frame.record is not None:
                self._seen.record = frame.record
            await self.push_frame(frame, direction)
        elif isinstance(frame, NLUResultFrame):
            await self.push_frame(frame, direction)
            await self._on_turn(frame)
        elif isinstance(frame, BotReplyFrame):
            await self._on_reply(frame)
        elif isinstance(frame, TTSSpeakFrame):
            await self._on_speak(frame)
        elif isinstance(frame, HandOffNowFrame):
            if self._phase in (_Phase.WATCHING, _Phase.AWAITING_DIALOGUE_LINE):
                await self._escalate(Decision(Trigger.SERVER_STOPPING, frame.reason), speak=True)
        elif isinstance(frame, LLMFullResponseStartFrame | LLMTextFrame | LLMFullResponseEndFrame):
            await self._on_llm(frame)
        elif isinstance(frame, ActionWithdrawnFrame):
            if frame.withdraws(HAND_OFF):
                self._withdraw()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    # Turns

    async def _on_turn(self, nlu: NLUResultFrame) -> None:
        keyed = nlu.path is DecisionPath.DTMF
        text = "[keypad entry]" if keyed else nlu.text
        score = self._sentiment_score(nlu)
        if score is not None:
            self._seen.sentiment.append(score)
        if text.strip():
            self._seen.transcript.append({"role": "caller", "text": text})
        self._seen.intents.append(
            {
                "intent": nlu.intent,
                "confidence": nlu.confidence,
                "band": str(nlu.band),
                "path": str(nlu.path),
            }
        )
        for kind, value in nlu.entities.items():
            if kind != "digits":  # keyed digits may be a PIN or an account number
                self._seen.entities[kind] = value
        self._failures = self._failures + 1 if nlu.band is Band.REPAIR else 0
        self._last_text = nlu.text
        if self._phase is not _Phase.WATCHING:
            return
        decision = self.check(nlu, score)
        self._withdrawn_text = None
        if decision is None:
            return
        if nlu.intent in self._transfer_intents and nlu.band is Band.ACT:
            # The dialogue's own transfer reply (e.g. the emergency line) is the hand-off line.
            self._pending = decision
            self._phase = _Phase.AWAITING_DIALOGUE_LINE
        else:
            await self._escalate(decision, speak=True)

    def _sentiment_score(self, nlu: NLUResultFrame) -> float | None:
        """The turn's tone, or None when its words are not heard well enough to hand off on."""
        if (
            self._sentiment is None
            or nlu.path is DecisionPath.DTMF
            or not nlu.text.strip()
            or nlu.unsure
            or self._doubt.unsure(nlu.heard_confidence, irreversible=True)
        ):
            return None
        return round(self._sentiment.score(nlu.text), 3)

    def check(self, nlu: NLUResultFrame, score: float | None) -> Decision | None:
        """The first trigger this turn fires, if any (call order = priority).

        Args:
            nlu: The turn's decision.
            score: Its tone (None: not read, so no hand-off on it).
        """
        c = self._config
        acted = nlu.band is Band.ACT
        if c.explicit_request.enabled:
            if acted and nlu.intent in c.explicit_request.intents:
                how = "keypad 0" if nlu.path is DecisionPath.DTMF else f"intent {nlu.intent}"
                return Decision(Trigger.EXPLICIT_REQUEST, how)
            if self._person.asks(self._new_words(nlu.text), nlu.path):
                return Decision(Trigger.EXPLICIT_REQUEST, "asked for a person")
        if c.out_of_scope.enabled and acted and nlu.intent in c.out_of_scope.intents:
            return Decision(Trigger.OUT_OF_SCOPE, f"intent {nlu.intent}")
        bar = self._sentiment_bar(nlu)
        if c.negative_sentiment.enabled and score is not None and score <= bar:
            return Decision(Trigger.NEGATIVE_SENTIMENT, f"sentiment {score:+.2f} <= {bar:+.2f}")
        if c.failed_turns.enabled and self._failures >= c.failed_turns.limit:
            return Decision(Trigger.FAILED_TURNS, f"{self._failures} turns not understood")
        return None

    def _new_words(self, text: str) -> str:
        """``text`` without the withdrawn turn's words it was joined to, if it starts with them.

        "Let me talk to a person, please." | "Actually, what are your opening hours?" over
        the hand-off line: the hand-off is withdrawn and the two turns joined; the joined
        turn's first words must not ask for the person again (e2e escalation test, when the
        second turn, transcribed whole, no longer opened with "Actually").
        """
        before, text = (self._withdrawn_text or "").strip(), text.strip()
        return text[len(before) :] if before and text.startswith(before) else text

    def _sentiment_bar(self, nlu: NLUResultFrame) -> float:
        """How negative the turn must read to hand off: lower for a request the agent serves."""
        trigger = self._config.negative_sentiment
        understood = nlu.band is not Band.REPAIR and nlu.intent != OUT_OF_SCOPE
        return trigger.understood_threshold if understood else trigger.threshold

    # Replies

    async def _on_reply(self, reply: BotReplyFrame) -> None:
        if self._phase is _Phase.AWAITING_DIALOGUE_LINE:
            assert self._pending is not None
            if reply.hands_off and reply.text:
                await self.push_frame(reply)
                self._escalate_after_text = reply.text
            else:
                self._drop_texts.append(reply.text)
                await self._escalate(self._pending, speak=True)
            return
        if self._phase is _Phase.ESCALATED:
            self._drop_texts.append(reply.text)
            return
        backing = self._backing(reply) if reply.hands_off else None
        if backing is not None and reply.text:
            # The dialogue acts on a confirmed request: its transfer reply is the hand-off line.
            self._pending = backing
            await self.push_frame(reply)
            self._escalate_after_text = reply.text
            return
        if reply.hands_off:
            # A transfer announced by the dialogue that no trigger backs.
            self._drop_texts.append(reply.text)
            await self._say(self._config.unavailable_line)
            return
        await self.push_frame(reply)

    async def _on_speak(self, frame: TTSSpeakFrame) -> None:
        if frame.text in self._drop_texts:
            self._drop_texts.remove(frame.text)
            return
        if self._phase is _Phase.ESCALATED:
            return  # the call is being handed off: no more bot lines
        await self.push_frame(frame)
        self._seen.transcript.append({"role": "agent", "text": frame.text})
        if self._escalate_after_text is not None and frame.text == self._escalate_after_text:
            self._escalate_after_text = None
            assert self._pending is not None
            await self._escalate(self._pending, speak=False)

    def _backing(self, reply: BotReplyFrame) -> Decision | None:
        """The trigger behind a transfer reply for one of its intents, if it may fire."""
        c = self._config
        if c.out_of_scope.enabled and reply.intent in c.out_of_scope.intents:
            return Decision(Trigger.OUT_OF_SCOPE, f"intent {reply.intent}")
        if (
            self._phase is _Phase.WATCHING
            and c.explicit_request.enabled
            and reply.intent in c.explicit_request.intents
        ):
            return Decision(Trigger.EXPLICIT_REQUEST, f"intent {reply.intent}")
        return None

    async def _on_llm(self, frame: Frame) -> None:
        if self._phase is _Phase.ESCALATED:
            return
        if isinstance(frame, LLMFullResponseStartFrame):
            self._llm_text = []
        elif isinstance(frame, LLMTextFrame):
            self._llm_text.append(frame.text)
        elif self._llm_text:
            self._seen.transcript.append({"role": "agent", "text": "".join(self._llm_text)})
            self._llm_text = []
        await self.push_frame(frame)

    async def _say(self, text: str, *, hands_off: bool = False) -> None:
        await self.push_frame(BotReplyFrame(text=text, hands_off=hands_off))
        await self.push_frame(TTSSpeakFrame(text, append_to_context=True))
        self._seen.transcript.append({"role": "agent", "text": text})

    # Escalating

    async def _escalate(self, decision: Decision, *, speak: bool) -> None:
        if self._phase is _Phase.BLOCKED:
            self._phase_before = _Phase.BLOCKED
        elif self._phase is not _Phase.ESCALATED:
            self._phase_before = _Phase.WATCHING
        self._phase = _Phase.ESCALATED
        self._pending = None
        self.decision = decision
        self._stop_timer()
        logger.info(f"escalating ({decision.trigger.value})")
        if speak:
            await self._say(self._handoff_line, hands_off=True)
        summary = build_summary(self._seen, trigger=decision.trigger.value, detail=decision.detail)
        await self.push_frame(
            EscalationFrame(trigger=decision.trigger.value, reason=decision.detail, summary=summary)
        )

    def _withdraw(self) -> None:
        """The caller went on over the hand-off line: a hand-off on a turn is not made."""
        decision = self.decision if self._phase is _Phase.ESCALATED else self._pending
        if self._phase is _Phase.WATCHING or decision is None:
            return
        if decision.trigger not in TURN_TRIGGERS:
            return
        logger.info(f"hand-off withdrawn ({decision.trigger.value}): the caller went on")
        self._withdrawn_text = self._last_text
        escalated = self._phase is _Phase.ESCALATED
        self._phase = self._phase_before if escalated else _Phase.WATCHING
        self._pending = None
        self._escalate_after_text = None
        self.decision = None
        self._start_timer()

    def _start_timer(self) -> None:
        limit = self._config.max_duration
        if limit.enabled and self._timer is None:
            left = max(0.0, limit.seconds - (self._clock() - self._started_at))
            self._timer = self.create_task(self._expire(limit.seconds, left), name="max-duration")

    def _stop_timer(self) -> None:
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
        self._timer = None

    async def _expire(self, seconds: float, left: float) -> None:
        await asyncio.sleep(left)
        self._timer = None
        if self._phase is _Phase.WATCHING:
            await self._escalate(
                Decision(Trigger.MAX_DURATION, f"call longer than {seconds:g} s"), speak=True
            )
