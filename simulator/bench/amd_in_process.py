"""``callagent bench amd --in-process``: the detector alone, for quick tuning.

Each answer of :mod:`simulator.bench.amd_answers` goes through the embedded STT and the
call's :class:`~processors.answering_machine.AnsweringMachineDetector` (its real VAD,
beep detector and strategies) in a small in-process pipeline. The audio is fed as fast
as the detector takes it, except while a transcription it asked for is in flight: then
in real time, so the words arrive as late (in the callee's audio) as on a live call.
The figures are :mod:`simulator.bench.amd_report`'s; the opening's time is when the
detector pushed it (not when a caller hears it: see :mod:`simulator.bench.amd_call_path`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from pipecat.frames.frames import InputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.workers.runner import WorkerRunner

from integrations.speech.base import SpeechRecognizer
from processors.answering_machine import AnsweringMachineDetector, Stage
from processors.machine_verdict import AnsweringMachineReport
from simulator.bench.amd_answers import PERSON, Answer
from simulator.bench.amd_report import AnswerResult

VOICEMAIL_LINE = "Hi, this is Riverside Dental calling about your appointment. Please call us back."
CHUNK_BYTES = 320  # 20 ms at 8 kHz
SAMPLE_RATE = 8000


def _vad_factory() -> Callable[[], Any]:
    from pipecat.audio.vad.vad_analyzer import VADParams

    from bot.settings import Settings
    from integrations.speech.vad import PhoneVADAnalyzer

    settings = Settings()
    params = VADParams(start_secs=settings.vad_start_secs, stop_secs=settings.vad_stop_secs)
    return lambda: PhoneVADAnalyzer(params=params, noise_gate=settings.vad_noise_gate)


def load_recognizer() -> SpeechRecognizer:
    """The embedded ASR as the settings configure it (no domain language model)."""
    from bot.settings import Settings
    from integrations.speech.moonshine import MoonshineRecognizer

    settings = Settings()
    return MoonshineRecognizer(
        cache_dir=settings.cache_dir / "moonshine",
        num_threads=settings.asr_threads,
        beam_width=settings.asr_beam_width,
    )


async def run_answer(
    answer: Answer, recognizer: SpeechRecognizer | None, make_vad: Callable[[], Any]
) -> AnswerResult:
    """One answer through [STT →] the detector; what it decided and when."""
    from integrations.speech.stt import LocalSTTService

    amd = AnsweringMachineDetector(vad_analyzer=make_vad(), voicemail_line=VOICEMAIL_LINE)
    stt = LocalSTTService(recognizer=recognizer) if recognizer is not None else None
    processors: list[FrameProcessor] = [p for p in (stt, amd) if p is not None]
    worker = PipelineWorker(
        Pipeline(processors),
        params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE),
        enable_rtvi=False,
        enable_turn_tracking=False,
        idle_timeout_secs=None,
    )
    runner = WorkerRunner(handle_sigint=False, check_dangling_tasks=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    try:
        await _feed(worker, amd, answer.pcm)
    finally:
        await worker.cancel()
        await running
    return _result(answer, amd.report)


async def _feed(worker: PipelineWorker, amd: AnsweringMachineDetector, pcm: bytes) -> None:
    fed = 0.0
    for i in range(0, len(pcm), CHUNK_BYTES):
        chunk = pcm[i : i + CHUNK_BYTES]
        await worker.queue_frame(
            InputAudioRawFrame(audio=chunk, sample_rate=SAMPLE_RATE, num_channels=1)
        )
        fed += len(chunk) / 2 / SAMPLE_RATE
        deadline = time.monotonic() + 10.0
        while amd.heard_s < fed - 1e-6 and amd.stage not in (Stage.THROUGH, Stage.DONE):
            if time.monotonic() > deadline:
                raise TimeoutError("the detector stopped taking audio")
            await asyncio.sleep(0.001)
        if amd.stage in (Stage.THROUGH, Stage.DONE):
            return
        if amd.pending_transcripts:
            await asyncio.sleep(len(chunk) / 2 / SAMPLE_RATE)  # real time while the ASR works


def _result(answer: Answer, report: AnsweringMachineReport) -> AnswerResult:
    opening = (
        report.opening_at_s - answer.speech_end_s
        if answer.truth == PERSON and report.opening_at_s is not None
        else None
    )
    after_beep = (
        report.voicemail_at_s - answer.beep_end_s
        if answer.beep_end_s is not None and report.voicemail_at_s is not None
        else None
    )
    return AnswerResult(
        name=answer.name,
        truth=answer.truth,
        kind=answer.kind,
        noise=answer.noise,
        voice=answer.voice,
        verdict=str(report.verdict) if report.verdict is not None else "none",
        source=report.source,
        decided_after_s=report.decided_after_s,
        opening_after_speech_s=None if opening is None else round(opening, 3),
        withdrawn=report.withdrawn,
        openings_held=report.openings_held,
        disposition=report.disposition,
        message_after_beep_s=None if after_beep is None else round(after_beep, 3),
    )


async def measure_in_process(
    answers: Sequence[Answer],
    *,
    recognizer: SpeechRecognizer | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[AnswerResult]:
    """Every answer through the detector (with the ASR when a recognizer is given)."""
    make_vad = _vad_factory()
    results = []
    for i, answer in enumerate(answers):
        results.append(await run_answer(answer, recognizer, make_vad))
        if progress is not None:
            progress(i + 1, len(answers))
    return results
