"""A caller turn of several speech segments gets its text from one transcription of it all.

The segmented STT transcribes each VAD segment on its own, and the user aggregator joins
the segments' texts into the turn's. When the caller pauses inside a request ("I booked
a checkup for next week. [pause] But I can't make it, can I move it?") or babble splits
the speech, each piece is heard without the other's context. :class:`WholeTurnTranscriber`
sits right after the user aggregator: it keeps the caller's audio of the current turn and
the VAD's segment bounds, and when a turn of two or more segments ends (its
``LLMContextFrame``), it transcribes the turn's audio as one piece (first segment's start
to last one's end, long pauses shortened: :func:`~integrations.speech.whole_turn.turn_spans`)
and puts that text in the context's last user message, and its readings in the call's
:class:`~integrations.speech.nbest.TurnReadings`, in place of the segments'. The NLU, the
call record (its caller text is the NLU's) and the ``nlu`` event then all see it.

Everything before the turn's end still runs on the segments' transcripts: the turn-stop
strategies and the completeness check inside the aggregator, and the barge-in decisions
after it. A single-segment turn passes straight through. The transcription starts at the
VAD's stop of each later segment, beside that segment's own (a speculative run, within the
call's speculation budget), so by the time the turn ends (the end-of-turn model, the hold
for a preamble) it is usually done.

``callagent bench noise-path`` on the 131 dev requests, flite slt voice, phone line
(offline, deterministic): in 10 dB babble 60 requests are split, and the turn text's WER
goes from 91.4 % (segments joined) to 86.5 % (split turns transcribed whole; on the split
requests alone 89.6 -> 81.5 %, against 79.4 % for the speech cut by hand); clean, 52 are
split (two sentences, a filler first) and WER goes from 19.7 to 18.6 % (split alone
20.6 -> 18.5 %).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    LLMContextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from integrations.speech.base import SpeechRecognizer
from integrations.speech.nbest import Recognition, TurnReadings
from integrations.speech.speculation import SpeculationBudget
from integrations.speech.stt import RECOGNIZER_POOL
from integrations.speech.whole_turn import (
    MAX_PAUSE_SECS,
    PREROLL_SECS,
    SPEECH_LEAD_SECS,
    recognize_turn,
    turn_spans,
)
from processors.barge_in import normalize_words
from processors.user_turn import user_text

MAX_TURN_SECS = 120.0
"""A turn still open after this much audio is not transcribed again (its audio is dropped)."""


LATE_WORDS_MATCHED = 0.75
"""Share of a late transcript's words the turn before must end with for it to be dropped.

Not measured: the same audio decoded twice differs in a word or two ("room for a?" /
"room for us?")."""
LATE_TAIL_SLACK_WORDS = 2
"""The turn before's last words searched: as many as the late transcript's, and these more."""

CONTEXT_WAIT_SECS = 5.0
"""A turn's context follows its end at once: a turn whose context has not come by then had none."""

_Run = tuple[int, "asyncio.Future[Recognition]"]
"""A transcription of a turn's first N segments."""


@dataclass
class _Turn:
    """The caller's audio since just before a turn's first segment, and its segments.

    Positions are byte offsets into ``audio``.
    """

    audio: bytearray = field(default_factory=bytearray)
    segments: list[tuple[int, int]] = field(default_factory=list)
    speaking_since: int | None = None
    unknown_start: bool = False
    """The turn began inside a segment the previous turn ended in: its start is not known."""


class WholeTurnTranscriber(FrameProcessor):
    """After the user aggregator: a turn of several segments is transcribed again, whole."""

    def __init__(
        self,
        *,
        recognizer: SpeechRecognizer,
        readings: TurnReadings | None = None,
        max_pause_secs: float = MAX_PAUSE_SECS,
        preroll_secs: float = PREROLL_SECS,
        speech_lead_secs: float = SPEECH_LEAD_SECS,
        speculation: SpeculationBudget | None = None,
        executor: Executor | None = None,
        **kwargs: Any,
    ):
        """Transcribe one call's split turns whole.

        Args:
            recognizer: The embedded recogniser (shared, thread-safe).
            readings: The call's readings log; a rewritten turn's segments' readings are
                replaced there by the whole turn's (None: no log).
            max_pause_secs: Longest pause kept between two segments.
            preroll_secs: Audio kept before the first segment's start.
            speech_lead_secs: Audio kept before each later segment's start.
            speculation: Bounds the runs started before the turn ends (None: they always
                start).
            executor: Where the recogniser runs (default: the STT's threads).
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._recognizer = recognizer
        self._readings = readings
        self._max_pause_secs = max_pause_secs
        self._preroll_secs = preroll_secs
        self._speech_lead_secs = speech_lead_secs
        self._speculation = speculation
        self._executor = executor or RECOGNIZER_POOL
        self._sample_rate = 0
        self._turn = _Turn()
        self._ended: deque[tuple[float, _Turn, _Run | None]] = deque()
        """Turns whose end (``UserStoppedSpeakingFrame``, a system frame) came and whose
        context (a data frame, which system frames overtake) has not, with when they ended."""
        self._running: _Run | None = None
        """The run for the turn's first N segments, started at the Nth one's stop."""
        self._stop_owed = False
        """A turn ended before the VAD's stop of its last segment: that stop is not a segment."""
        self._turn_open = False
        """A turn started (``UserStartedSpeakingFrame``) and its end has not been seen."""
        self._ended_by_context = False
        """The open turn was ended by its context: the stop that follows ends nothing more."""
        self._last_whole: str | None = None
        """The latest turn's text from its whole audio, until the caller starts a new turn."""
        self.rewritten = 0
        """Turns whose text came from the whole turn's audio."""
        self.late_dropped = 0
        """Late segment transcripts dropped: the turn before had them from its whole audio."""
        self.waited_s: list[float] = []
        """How long each split turn's context waited here for the whole-turn transcript."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Keep the turn's audio and segments; rewrite a split turn's text at its end."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self._add_audio(frame)
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            if direction is FrameDirection.DOWNSTREAM and self._turn.speaking_since is None:
                self._turn.speaking_since = len(self._turn.audio)
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            if direction is FrameDirection.DOWNSTREAM:
                self._segment_ended()
        elif isinstance(frame, UserStartedSpeakingFrame):
            if direction is FrameDirection.DOWNSTREAM:
                self._turn_started()
        elif isinstance(frame, UserStoppedSpeakingFrame):
            if direction is FrameDirection.DOWNSTREAM:
                if self._ended_by_context:
                    self._ended_by_context = False  # its turn went with its context
                else:
                    self._turn_ended()
        elif (
            direction is FrameDirection.DOWNSTREAM
            and isinstance(frame, LLMContextFrame)
            and not getattr(frame, "speculation", False)
        ):
            if self._heard_already(frame):
                return
            await self._rewrite(frame)
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        """Drop runs still in flight (the call is over)."""
        await super().cleanup()
        for run in [self._running, *(run for _, _, run in self._ended)]:
            if run is not None:
                run[1].cancel()
        self._running = None
        self._ended.clear()

    def _add_audio(self, frame: InputAudioRawFrame) -> None:
        if frame.sample_rate != self._sample_rate:
            self._sample_rate = frame.sample_rate
            self._turn = _Turn()  # positions are in bytes of one rate
        turn = self._turn
        turn.audio += frame.audio
        if len(turn.audio) > self._bytes(MAX_TURN_SECS):
            self._turn = turn = _Turn(audio=turn.audio[-self._bytes(self._preroll_secs) :])
        if turn.segments or turn.speaking_since is not None:
            return
        # no speech yet: keep only the pre-roll the first segment may need
        keep = int(self._preroll_secs * self._sample_rate) * 2
        if len(turn.audio) > 2 * keep:
            del turn.audio[: len(turn.audio) - keep]

    def _turn_started(self) -> None:
        """A new turn: its segments are those from the one under way (if any) on."""
        self._turn_open = True
        self._ended_by_context = False  # a stop still owed never came (none does for some)
        self._last_whole = None
        turn = self._turn
        since = turn.speaking_since
        start = _even(max(0, (len(turn.audio) if since is None else since) - self._preroll()))
        self._turn = _Turn(
            audio=turn.audio[start:],
            speaking_since=None if since is None else since - start,
            unknown_start=self._stop_owed,
        )
        if self._running is not None:
            self._running[1].cancel()
            self._running = None

    def _segment_ended(self) -> None:
        turn = self._turn
        if self._stop_owed:  # the end of a segment a turn already closed
            self._stop_owed = False
            turn.speaking_since = None
            return
        if turn.speaking_since is None:
            return
        turn.segments.append((turn.speaking_since, len(turn.audio)))
        turn.speaking_since = None
        if len(turn.segments) < 2:
            return
        if self._running is not None:
            self._running[1].cancel()  # the turn went on: that run is out of date
            self._running = None
        if self._speculation is not None and not self._speculation.claim():
            return  # the cores are busy: run once the turn has ended, if it has several
        future = self._start(turn)
        if self._speculation is not None:
            future.add_done_callback(self._speculation.release)
        self._running = (len(turn.segments), future)

    def _turn_ended(self) -> None:
        """Set the ended turn aside and keep listening (the next turn starts at its start).

        The user aggregator's turn end can reach here before the VAD's stop of the turn's
        last segment (that frame goes through the aggregator's queue): the segment is then
        the ended turn's, closed here, and its stop when it comes is no new segment.
        """
        self._turn_open = False
        turn = self._turn
        if turn.speaking_since is not None:
            turn.segments.append((turn.speaking_since, len(turn.audio)))
            turn.speaking_since = None
            self._stop_owed = True
        self._turn = _Turn(audio=turn.audio[-self._preroll() :] if self._preroll() else bytearray())
        self._ended.append((time.monotonic(), turn, self._running))
        self._running = None

    async def _rewrite(self, frame: LLMContextFrame) -> None:
        if self._turn_open:
            # The context overtook its turn's stop (on a call the aggregator's context
            # reached here first; the stop then closed the turn and the caller's next
            # turn, within CONTEXT_WAIT_SECS, got this one's whole text): it ends the turn,
            # and turns set aside before it had no context.
            for _, _, stale in self._ended:
                if stale is not None:
                    stale[1].cancel()
            self._ended.clear()
            self._turn_ended()
            self._ended_by_context = True
        turn: _Turn | None = None
        run: _Run | None = None
        while self._ended and turn is None:
            ended_at, turn, run = self._ended.popleft()
            if time.monotonic() - ended_at > CONTEXT_WAIT_SECS:  # that turn brought no context
                if run is not None:
                    run[1].cancel()
                turn = run = None
        if turn is None or len(turn.segments) < 2 or turn.unknown_start:
            if run is not None:
                run[1].cancel()
            return
        old = user_text(frame)
        if not old.strip():
            if run is not None:
                run[1].cancel()
            return  # an empty turn: nothing was heard in any segment
        future = run[1] if run is not None and run[0] == len(turn.segments) else None
        if future is None:
            if run is not None:
                run[1].cancel()
            future = self._start(turn)
        waited = time.perf_counter()
        try:
            heard = await future
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as e:  # the segments' text stands
            logger.warning(f"{self}: whole-turn STT failed ({type(e).__name__}); segments kept")
            return
        waited = time.perf_counter() - waited
        self.waited_s.append(waited)
        text = heard.text.strip()
        if not text or not _replace_user_text(frame, text):
            return
        if self._readings is not None:
            self._readings.take(old)  # the segments' readings, no longer the turn's
            self._readings.add(heard)
        self.rewritten += 1
        self._last_whole = text
        logger.debug(
            f"{self}: turn of {len(turn.segments)} segments transcribed whole "
            f"({len(old.split())} -> {len(text.split())} words, "
            f"confidence {heard.confidence:.2f}; the turn waited {waited * 1000:.0f} ms)"
        )

    def _heard_already(self, frame: LLMContextFrame) -> bool:
        """Whether a context with no turn of its own holds words its turn before had whole.

        Under load a turn can end before its last segment's transcript arrives (its whole
        audio, transcribed here, had those words). The user aggregator then keeps that
        late transcript and, with no turn to end, sends it on its own seconds later as a
        turn the caller never took ("... new dentist. Do you have room for us?", then
        "Do you have room for us?", answered "Sorry, could you say that again?": seen in
        `callagent bench understanding`, 4 calls at once). Such a context is dropped, and
        its message taken out of the shared context. A keyed turn ("DTMF: 1") or a late
        transcript the turn before did not have is a turn and goes on.
        """
        if self._last_whole is None or self._turn_open or self._ended:
            return False
        late = normalize_words(user_text(frame)).split()
        whole = normalize_words(self._last_whole).split()
        if not late or not whole:
            return False
        tail = whole[-(len(late) + LATE_TAIL_SLACK_WORDS) :]
        matched = sum(b.size for b in SequenceMatcher(None, late, tail).get_matching_blocks())
        if matched < LATE_WORDS_MATCHED * len(late):
            return False
        messages = list(frame.context.get_messages())
        frame.context.set_messages(messages[:-1])
        self.late_dropped += 1
        logger.info(f"{self}: late segment of {len(late)} words, heard in its turn whole: dropped")
        return True

    def _start(self, turn: _Turn) -> asyncio.Future[Recognition]:
        """Transcribe the turn's segments so far in a worker thread."""
        spans = turn_spans(
            turn.segments,
            preroll=self._bytes(self._preroll_secs),
            speech_lead=self._bytes(self._speech_lead_secs),
            max_pause=self._bytes(self._max_pause_secs),
        )
        pcm = b"".join(bytes(turn.audio[_even(a) : _even(b)]) for a, b in spans)
        return asyncio.get_running_loop().run_in_executor(
            self._executor, recognize_turn, self._recognizer, pcm, self._sample_rate
        )

    def _preroll(self) -> int:
        return self._bytes(self._preroll_secs)

    def _bytes(self, secs: float) -> int:
        return int(secs * self._sample_rate) * 2


def _even(position: float) -> int:
    """A byte offset on a 16-bit sample boundary."""
    return max(0, int(position) // 2 * 2)


def _replace_user_text(frame: LLMContextFrame, text: str) -> bool:
    """Put ``text`` in the context's last message, if it is the caller's in plain text."""
    messages = list(frame.context.get_messages())
    last = messages[-1] if messages else None
    if not isinstance(last, dict) or last.get("role") != "user":
        return False
    if not isinstance(last.get("content"), str):
        return False
    replaced: Any = {**last, "content": text}
    frame.context.set_messages([*messages[:-1], replaced])
    return True
