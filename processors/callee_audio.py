"""What an outbound callee's audio shows as it comes in: speech, sound, beeps.

The answering-machine detector (:mod:`processors.answering_machine`) hears the callee
through a :class:`CalleeAudio`: its own VAD's speech spans, stretches of sound by level
alone (what the VAD may not hear as speech), the beeps of a machine, and where long
unbroken speech can be cut for the STT without splitting a word. All of it goes into the
detector's :class:`~processors.machine_verdict.Evidence`; times are seconds of the
callee's audio since the answer (``Evidence.now_s``, advanced by the detector).
"""

from __future__ import annotations

from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADState

from integrations.speech.beep import BeepDetector
from integrations.speech.vad import NoiseFloor, level_db
from processors.machine_verdict import Evidence, SpeechSpan

CUT_DIP_DB = 14.0
"""A 20 ms frame this far below the piece's loudest is a dip between words."""
SOUND_ABOVE_QUIET_DB = 15.0
"""A 20 ms frame this far above the line's quiet (and above :data:`SOUND_MIN_DB`) is sound."""
SOUND_MIN_DB = -55.0
SOUND_GAP_SECS = 0.3
"""Sound resumed within this long is the same stretch (the gaps between words)."""


class CalleeAudio:
    """Speech spans (VAD), sound spans (level), beeps and STT cuts of one callee's audio."""

    def __init__(self, vad: VADAnalyzer, evidence: Evidence, *, transcribe_every_secs: float):
        """Hear one callee.

        Args:
            vad: The detector's own VAD (not shared with the user aggregator).
            evidence: Where the spans and beeps go.
            transcribe_every_secs: Long speech is cut for the STT in pieces this long.
        """
        self._vad = vad
        self._evidence = evidence
        self._transcribe_every_secs = transcribe_every_secs
        self._quiet = NoiseFloor(window_s=6.0, percentile=10.0)
        self._sound_until_s = 0.0
        self._segment_start_s = 0.0
        self._segment_peak = -120.0
        self._beeps: BeepDetector | None = None
        self._sample_rate = 0
        self._vad_state = VADState.QUIET

    @property
    def started(self) -> bool:
        """Whether :meth:`start` was called (audio can be heard)."""
        return self._beeps is not None

    @property
    def speaking(self) -> bool:
        """Whether the VAD hears the callee speaking now."""
        return self._vad_state is VADState.SPEAKING

    @property
    def last_tonal_s(self) -> float | None:
        """When a tone (a beep?) was last heard, if one was."""
        return self._beeps.last_tonal_s if self._beeps is not None else None

    def start(self, sample_rate: int) -> None:
        """The call's audio starts, at ``sample_rate``."""
        self._sample_rate = sample_rate
        self._vad.set_sample_rate(sample_rate)
        self._beeps = BeepDetector(sample_rate)

    async def hear(self, pcm: bytes) -> VADState | None:
        """Take one frame of audio (``Evidence.now_s`` already at its end).

        Returns:
            ``SPEAKING`` when the callee started speaking, ``QUIET`` when their speech
            span ended, else None.
        """
        if self._beeps is not None:
            self._evidence.beeps.extend(self._beeps.feed(pcm))
        self._sound_step(pcm)
        return self._vad_step(await self._vad.analyze_audio(pcm))

    def segment_opened(self) -> None:
        """The STT collects the callee's words from now on."""
        self._segment_start_s = self._evidence.now_s
        self._segment_peak = -120.0

    def segment_due(self, pcm: bytes) -> bool:
        """Whether long unbroken speech should be cut here (and go on collecting).

        The cut waits (up to half a second) for a dip between words, so no word is split.
        """
        if self._vad_state is not VADState.SPEAKING or self._transcribe_every_secs <= 0:
            return False
        level = level_db(pcm)
        self._segment_peak = max(self._segment_peak, level)
        elapsed = self._evidence.now_s - self._segment_start_s
        if elapsed < self._transcribe_every_secs:
            return False
        return level < self._segment_peak - CUT_DIP_DB or (
            elapsed >= self._transcribe_every_secs + 0.5
        )

    def end_sound(self) -> None:
        """No audio comes (quiet): a stretch of sound still open ends where it was last heard."""
        sound = self._evidence.sound
        if sound and sound[-1].end_s is None:
            sound[-1].end_s = self._sound_until_s

    def _vad_step(self, state: VADState) -> VADState | None:
        """Speech spans from the VAD's confirmed starts and stops."""
        if state in (VADState.STARTING, VADState.STOPPING) or state == self._vad_state:
            return None
        self._vad_state = state
        params = self._vad.params
        evidence = self._evidence
        if state is VADState.SPEAKING:
            evidence.speech.append(SpeechSpan(max(0.0, evidence.now_s - params.start_secs)))
            return VADState.SPEAKING
        if evidence.speech and evidence.speech[-1].end_s is None:
            evidence.speech[-1].end_s = max(
                evidence.speech[-1].start_s, evidence.now_s - params.stop_secs
            )
            return VADState.QUIET
        return None

    def _sound_step(self, pcm: bytes) -> None:
        """Stretches of sound by level alone: what the VAD may not hear as speech."""
        evidence = self._evidence
        frame_s = len(pcm) / 2 / self._sample_rate
        level = level_db(pcm)
        quiet = self._quiet.update(level, frame_s)
        sounding = level >= max(quiet + SOUND_ABOVE_QUIET_DB, SOUND_MIN_DB)
        last = evidence.sound[-1] if evidence.sound else None
        if sounding:
            if last is None or last.end_s is not None:
                evidence.sound.append(SpeechSpan(evidence.now_s - frame_s))
            self._sound_until_s = evidence.now_s
        elif last is not None and last.end_s is None:
            if evidence.now_s - self._sound_until_s >= SOUND_GAP_SECS:
                last.end_s = self._sound_until_s
