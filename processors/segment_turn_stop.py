"""End of turn from Smart Turn that waits for the transcript of the caller's *last* words.

Pipecat's :class:`TurnAnalyzerUserTurnStopStrategy` ends a turn once the turn model
says it is complete and it holds "a transcript". With a segment-at-a-time STT a turn
can span several VAD segments ("Sorry, | where exactly are you located?"), and the
transcript it holds may be the first segment's: a turn ended on it loses the rest,
which then arrives as a turn of its own. This strategy counts the VAD's segment ends
against the STT's :class:`~integrations.speech.stt.SegmentTranscribedFrame` reports
and lets the turn end only once every segment of it has been transcribed. If a report
never comes (the STT was cut off), the base class's safety-net timer still ends the
turn, after at least ``min_stt_wait_s``.

When the model calls the pause unfinished, the strategy looks again once the pause has
lasted ``second_look_s`` longer. Smart Turn's verdict leans heavily on how much silence
follows the words: run on the same turns with 0.2 s more trailing silence, most of the
finished questions it first called unfinished come out finished (callagent's latency
bench at 8 kHz; see the README). Without the second look such a turn waits for the
analyzer's maximum pause (about 1.2 s). Speech before the second look cancels it.

The model runs in the background: the verdict at the pause is a task of its own, so the
user aggregator goes on taking the caller's audio and transcripts while it runs. (Pipecat's
strategy awaits it inside the aggregator's frame handling; with many calls on the cores
an inference takes 0.3-0.7 s, the call's audio backs up behind it, and the transcript of
the words just spoken arrives a second late -- the turn then ended on the STT safety net.)

When the cores are busy (``model_after_transcript`` says so: from a number of calls on),
the model waits for the pause's transcript instead of running at once: the semantic stop
strategy beside it ends a turn whose transcript is a request the agent understands, and
then the inference is never needed. Only if the turn is still open ``transcript_grace_s``
after the last transcript does the model run. On a quiet server nothing changes.

A turn whose every segment was transcribed without a single word (a cough, a noise,
a "mhm" the model cannot spell) ends as soon as that is known, rather than after the
user aggregator's 5 s stop timeout: the bot then goes on (see ``processors/barge_in.py``).

With a :class:`~processors.turn_hold.TurnHoldPolicy`, a turn the model calls finished
still waits when its words are not yet a request: openers only ("Um, yeah.", "Hi, um."),
a preamble ("I booked a checkup for next week.") or a statement the agent does not
understand end the turn only once the pause since the caller's last word has lasted
what the policy asks (speech meanwhile keeps the turn open, as usual). The policy is told
how sure the recogniser was of the latest words (the confidence of the last
:class:`~integrations.speech.nbest.Recognition` the STT attached): misheard words wait
less. A request the agent understands ends exactly as before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    TranscriptionFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy

from integrations.speech.nbest import Recognition
from integrations.speech.stt import SegmentTranscribedFrame
from processors.turn_hold import TurnHoldPolicy

MIN_STT_WAIT_S = 1.0
SECOND_LOOK_S = 0.2
TRANSCRIPT_GRACE_S = 0.1


class SegmentTranscriptTurnStopStrategy(TurnAnalyzerUserTurnStopStrategy):
    """Smart Turn end of turn that waits until every speech segment is transcribed."""

    def __init__(
        self,
        *,
        min_stt_wait_s: float = MIN_STT_WAIT_S,
        second_look_s: float = SECOND_LOOK_S,
        model_after_transcript: Callable[[], bool] | None = None,
        transcript_grace_s: float = TRANSCRIPT_GRACE_S,
        hold: TurnHoldPolicy | None = None,
        **kwargs: Any,
    ):
        """Create the strategy.

        Args:
            min_stt_wait_s: Least time the safety net waits for a missing transcript.
            second_look_s: After an "unfinished" verdict at the pause, run the model again
                once the pause has lasted this much longer (0: never).
            model_after_transcript: Asked at each pause; True: the model waits for the
                transcript (None: it never does).
            transcript_grace_s: How long after the last transcript a waiting model starts
                (the time the semantic check has to end an understood turn first).
            hold: How long a turn whose words are not yet a request waits (None: never).
            **kwargs: As for ``TurnAnalyzerUserTurnStopStrategy``.
        """
        super().__init__(**kwargs)
        self._min_stt_wait_s = min_stt_wait_s
        self._second_look_s = second_look_s
        self._second_look: asyncio.Task[None] | None = None
        self._verdict: asyncio.Task[None] | None = None
        self._model_after_transcript = model_after_transcript
        self._transcript_grace_s = transcript_grace_s
        self._deferred_deadline: float | None = None
        """The STT deadline of a pause whose verdict waits for the transcript."""
        self.models_skipped = 0
        """Pauses whose verdict waited for the transcript and was never needed."""
        self._untranscribed = 0
        self._words = False
        self.second_looks_complete = 0
        """Turns the second look ended (for tests and diagnostics)."""
        self._hold = hold
        self._hold_task: asyncio.Task[None] | None = None
        self._turn_text: list[str] = []
        self._confidence = 1.0
        """How sure the recogniser was of the turn's latest words (1 when it does not say)."""
        self._speech_end = 0.0
        """When the caller's latest words ended (wall clock, as the VAD's timestamps)."""
        self._bot_speaking = False
        self._over_bot = False
        self.turns_held = 0
        """Turns that waited for a longer pause because their words were not yet a request."""

    @property
    def untranscribed_segments(self) -> int:
        """Speech segments of this turn whose transcript has not arrived yet."""
        return self._untranscribed

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        """Count segment ends and transcriptions; the base class does the rest."""
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
        elif isinstance(frame, TranscriptionFrame) and frame.text.strip():
            self._turn_text.append(frame.text.strip())
            heard = frame.result
            self._confidence = heard.confidence if isinstance(heard, Recognition) else 1.0
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            self._untranscribed += 1
            self._speech_end = frame.timestamp - frame.stop_secs
        elif isinstance(frame, SegmentTranscribedFrame):
            self._untranscribed = max(0, self._untranscribed - 1)
            self._words = self._words or frame.has_text
            result = await super().process_frame(frame)
            if not self._untranscribed and not self._words and not self._vad_user_speaking:
                await self.trigger_user_turn_stopped()  # nothing but noise: an empty turn
            else:
                await self._maybe_start_deferred_verdict()
                await self._maybe_trigger_user_turn_stopped()
            return result
        return await super().process_frame(frame)

    async def _handle_vad_user_stopped_speaking(self, frame: VADUserStoppedSpeakingFrame) -> None:
        """Start the model on the pause and return: frames keep flowing while it runs."""
        self._vad_user_speaking = False
        self._stop_secs = frame.stop_secs
        self._vad_stopped = True
        # The STT safety net counts from when the caller stopped, not from the verdict.
        stt_deadline = frame.timestamp - frame.stop_secs + self._stt_timeout
        await self._cancel_verdict()
        if self._model_after_transcript is not None and self._model_after_transcript():
            self._deferred_deadline = stt_deadline
            self.models_skipped += 1  # until the model does run (see below)
            self._start_safety_net(stt_deadline)  # for a transcript that never comes
            return
        self._verdict = self.task_manager.create_task(
            self._await_verdict(stt_deadline), f"{self}::verdict"
        )

    async def _maybe_start_deferred_verdict(self) -> None:
        deadline = self._deferred_deadline
        if deadline is None or self._untranscribed or self._vad_user_speaking:
            return
        self._deferred_deadline = None
        if self._turn_complete:
            return  # the longest pause has passed meanwhile: no verdict needed
        self._verdict = self.task_manager.create_task(
            self._verdict_after_grace(deadline), f"{self}::verdict"
        )

    async def _verdict_after_grace(self, stt_deadline: float) -> None:
        await asyncio.sleep(self._transcript_grace_s)
        self.models_skipped -= 1  # the turn is still open: the model is needed after all
        await self._await_verdict(stt_deadline)

    async def _await_verdict(self, stt_deadline: float) -> None:
        # Still cancellable here (by speech or the turn ending); not once it decides.
        state, prediction = await self._turn_analyzer.analyze_end_of_turn()
        self._verdict = None
        await self._handle_prediction_result(prediction)
        self._turn_complete = state is EndOfTurnState.COMPLETE
        self._start_safety_net(stt_deadline)
        if not self._turn_complete and self._second_look_s > 0 and self._second_look is None:
            self._second_look = self.task_manager.create_task(
                self._look_again(), f"{self}::second_look"
            )
        await self._maybe_trigger_user_turn_stopped()

    def _start_safety_net(self, stt_deadline: float) -> None:
        if self._timeout_task is None:
            self._timeout_task = self.task_manager.create_task(
                self._timeout_handler(max(0.0, stt_deadline - time.time())),
                f"{self}::_timeout_handler",
            )

    async def _look_again(self) -> None:
        await asyncio.sleep(self._second_look_s)
        if self._vad_user_speaking or self._turn_complete:
            self._second_look = None
            return
        # Still cancellable here (by speech or the turn ending); not once it decides.
        state, prediction = await self._turn_analyzer.analyze_end_of_turn()
        self._second_look = None
        await self._handle_prediction_result(prediction)
        if state is EndOfTurnState.COMPLETE and not self._vad_user_speaking:
            self.second_looks_complete += 1
            self._turn_complete = True
            await self._maybe_trigger_user_turn_stopped()

    async def _discard_pending_end_of_turn(self) -> None:
        """Also drop a pending verdict, second look or hold (the caller spoke; the turn ended)."""
        await super()._discard_pending_end_of_turn()
        self._deferred_deadline = None
        await self._cancel_verdict()
        await self._cancel_second_look()
        await self._cancel_hold()

    async def handle_user_turn_started(self) -> None:
        """Note whether the turn began over the bot's reply (a backchannel is then whole)."""
        await super().handle_user_turn_started()
        self._over_bot = self._bot_speaking

    async def trigger_user_turn_stopped(self, **kwargs: Any) -> None:
        """End the turn, unless its words ask for a longer pause first (see the module)."""
        if self._vad_user_speaking:
            # The caller is talking again. Pipecat hands the turn's text on (the inference
            # the NLU decides on) before it ends the turn, and refuses only the end while the
            # caller speaks: a stop racing the caller's next word was decided on the fragment
            # with the turn left open ("Yes, | that's what I meant." answered at the comma).
            # The next pause decides.
            return
        text = " ".join(self._turn_text)
        if self._hold is None or not text:
            await super().trigger_user_turn_stopped(**kwargs)
            return
        if self._hold_task is not None:
            return  # already waiting for the pause to last
        needed = await asyncio.to_thread(
            self._hold.pause, text, over_bot=self._over_bot, confidence=self._confidence
        )
        remaining = self._speech_end + needed - time.time()
        if self._vad_user_speaking or self._hold_task is not None:
            return  # the caller went on meanwhile (or another path is waiting already)
        if remaining <= 0:
            await super().trigger_user_turn_stopped(**kwargs)
            return
        self.turns_held += 1
        self._hold_task = self.task_manager.create_task(
            self._end_after(remaining, kwargs), f"{self}::hold"
        )

    async def _end_after(self, seconds: float, kwargs: dict[str, Any]) -> None:
        await asyncio.sleep(seconds)
        self._hold_task = None  # ending the turn resets the strategy: not a task to cancel
        if not self._vad_user_speaking:
            await super().trigger_user_turn_stopped(**kwargs)

    async def cleanup(self) -> None:
        """Stop a pending verdict, second look or hold."""
        await self._cancel_verdict()
        await self._cancel_second_look()
        await self._cancel_hold()
        await super().cleanup()

    async def _cancel_hold(self) -> None:
        if self._hold_task is not None:
            task, self._hold_task = self._hold_task, None
            await self.task_manager.cancel_task(task)

    async def _cancel_verdict(self) -> None:
        if self._verdict is not None:
            task, self._verdict = self._verdict, None
            await self.task_manager.cancel_task(task)

    async def _cancel_second_look(self) -> None:
        if self._second_look is not None:
            task, self._second_look = self._second_look, None
            await self.task_manager.cancel_task(task)

    async def _reset(self) -> None:
        await super()._reset()
        self._untranscribed = 0
        self._words = False
        self._turn_text.clear()
        self._confidence = 1.0

    async def _timeout_handler(self, timeout: float) -> None:
        """The safety net (for a transcript that never comes): at least ``min_stt_wait_s``."""
        await super()._timeout_handler(max(timeout, self._min_stt_wait_s))

    async def _maybe_trigger_user_turn_stopped(self) -> None:
        if self._untranscribed and not self._timeout_expired:
            return  # the caller's latest words are still being transcribed
        await super()._maybe_trigger_user_turn_stopped()
