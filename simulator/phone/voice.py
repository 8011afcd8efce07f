"""The simulated caller's voice, and what is measured about it.

:class:`CallerVoice` cuts the clips the caller says into 20 ms frames for the phone's clock,
and measures on the call's timeline: a turn (:class:`~simulator.phone.measure.TurnMeasurement`)
from the end of the caller's voice to the bot's reply heard, and a barge-in
(:class:`~simulator.phone.measure.BargeInMeasurement`) from the caller talking over the bot
to the bot falling quiet. :class:`~simulator.phone.base.PhoneCall` drives it tick by tick.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from integrations.speech.audio import PHONE_SAMPLE_RATE
from simulator.phone.measure import (
    FRAME_BYTES,
    FRAME_S,
    BargeInMeasurement,
    TurnMeasurement,
    voiced_span,
)


@dataclass
class _Utterance:
    pcm: bytes
    onset_offset_s: float
    end_offset_s: float
    done: asyncio.Future[TurnMeasurement]
    pos: int = 0
    start_s: float | None = None
    barge_in_checked: bool = False
    turn: TurnMeasurement | None = None


class CallerVoice:
    """The clips the caller says, frame by frame, with their turns and barge-ins.

    Args:
        speech_rms: RMS level above which audio counts as speech (finds a clip's voice).
        barge_in_silence_s: Bot silence after a barge-in that counts as the bot stopping.
    """

    def __init__(self, *, speech_rms: float, barge_in_silence_s: float):
        self._speech_rms = speech_rms
        self._barge_in_silence_s = barge_in_silence_s
        self._utterances: deque[_Utterance] = deque()
        self._pending_turns: list[TurnMeasurement] = []
        self.open_barge_ins: list[BargeInMeasurement] = []
        """Barge-ins whose bot has not stopped yet."""
        self.turns: list[TurnMeasurement] = []
        self.barge_ins: list[BargeInMeasurement] = []

    def speak(self, pcm16_8k: bytes) -> asyncio.Future[TurnMeasurement]:
        """Queue a clip; the future resolves once its last frame has been taken."""
        pcm = pcm16_8k[: len(pcm16_8k) - len(pcm16_8k) % 2]
        span = voiced_span(pcm, self._speech_rms) or (0.0, len(pcm) / 2 / PHONE_SAMPLE_RATE)
        done: asyncio.Future[TurnMeasurement] = asyncio.get_running_loop().create_future()
        self._utterances.append(_Utterance(pcm, span[0], span[1], done))
        return done

    def next_frame(self, frame_start: float, bot_active: Callable[[], bool]) -> bytes:
        """The caller's 20 ms for the slot starting at ``frame_start`` (silence if nothing)."""
        if not self._utterances:
            return b"\x00" * FRAME_BYTES
        utt = self._utterances[0]
        if utt.start_s is None:
            utt.start_s = frame_start
        frame = utt.pcm[utt.pos : utt.pos + FRAME_BYTES]
        utt.pos += len(frame)
        onset = utt.start_s + utt.onset_offset_s
        if not utt.barge_in_checked and frame_start + FRAME_S > onset:
            utt.barge_in_checked = True
            if bot_active():
                barge = BargeInMeasurement(caller_onset_s=onset)
                self.barge_ins.append(barge)
                self.open_barge_ins.append(barge)
        end = utt.start_s + utt.end_offset_s
        if utt.turn is None and frame_start + FRAME_S >= end - 1e-9:
            # the caller's voice has ended: from here the bot's reply is awaited
            utt.turn = TurnMeasurement(onset, end)
            self.turns.append(utt.turn)
            self._pending_turns.append(utt.turn)
        if utt.pos >= len(utt.pcm):
            self._utterances.popleft()
            if not utt.done.done():
                utt.done.set_result(utt.turn or TurnMeasurement(onset, end))
        if len(frame) < FRAME_BYTES:
            frame += b"\x00" * (FRAME_BYTES - len(frame))
        return frame

    def bot_speech_heard(self, start: float) -> None:
        """Bot speech started being heard at ``start``: the turns waiting for it end."""
        for turn in list(self._pending_turns):
            if start >= turn.caller_end_s:
                turn.bot_audio_s = start
                self._pending_turns.remove(turn)

    def bot_quiet_since(self, now: float, last_end_s: float) -> None:
        """At ``now`` the bot's speech last ended at ``last_end_s``: close stopped barge-ins."""
        for barge in list(self.open_barge_ins):
            if now + FRAME_S - last_end_s >= self._barge_in_silence_s:
                barge.bot_stopped_s = max(last_end_s, barge.caller_onset_s)
                self.open_barge_ins.remove(barge)
