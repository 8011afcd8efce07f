"""``callagent bench amd``: answering-machine detection over a generated set of answers.

Each answer of :mod:`simulator.bench.amd_answers` goes through the embedded STT and the
call's :class:`~processors.answering_machine.AnsweringMachineDetector` (its real VAD,
beep detector and strategies) in a small in-process pipeline. The audio is fed as fast
as the detector takes it, except while a transcription it asked for is in flight: then
in real time, so the words arrive as late (in the callee's audio) as on a live call.
Prints a confusion matrix, accuracy, people taken for machines, the machine verdict's
p50, the message start after the beep and the person's hello to the opening; nothing
is asserted. The full call path (over the Twilio protocol) is wired at merge and reuses
:func:`summarize` and :func:`format_report`.

    python -m simulator.bench.amd [--count 210] [--no-asr] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pipecat.frames.frames import InputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.workers.runner import WorkerRunner

from integrations.percentile import percentile
from integrations.speech.base import SpeechRecognizer
from processors.answering_machine import AnsweringMachineDetector, Stage
from processors.machine_verdict import AnsweringMachineReport
from simulator.bench.amd_answers import MACHINE, PERSON, Answer, generate

VOICEMAIL_LINE = "Hi, this is Riverside Dental calling about your appointment. Please call us back."
CHUNK_BYTES = 320  # 20 ms at 8 kHz
SAMPLE_RATE = 8000


@dataclass
class AnswerResult:
    """What the detector made of one answer."""

    name: str
    truth: str
    kind: str
    noise: str
    verdict: str
    source: str
    decided_after_s: float | None
    opening_after_speech_s: float | None
    """People: from the end of their hello to the opening being pushed."""
    withdrawn: bool
    openings_held: int
    disposition: str | None
    message_after_beep_s: float | None
    """Machines with a beep: from the beep's true end to the message being pushed."""


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


def _stats(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 3),
        "p95": round(percentile(values, 95), 3),
        "max": round(max(values), 3),
    }


def summarize(results: Sequence[AnswerResult]) -> dict[str, Any]:
    """The figures: confusion matrix, accuracy, errors, timings.

    A person whose verdict is ``unknown`` (or none) counts as right: the call goes on as
    with a person. A machine is right only when judged a machine.
    """
    matrix = Counter((r.truth, r.verdict) for r in results)
    people = [r for r in results if r.truth == PERSON]
    machines = [r for r in results if r.truth == MACHINE]
    right = sum(r.verdict != "machine" for r in people) + sum(
        r.verdict == "machine" for r in machines
    )
    return {
        "answers": len(results),
        "confusion": {f"{truth}->{verdict}": n for (truth, verdict), n in sorted(matrix.items())},
        "accuracy": round(right / len(results), 4) if results else None,
        "people_taken_for_machines": sum(r.verdict == "machine" for r in people),
        "people_taken_for_machines_rate": (
            round(sum(r.verdict == "machine" for r in people) / len(people), 4) if people else None
        ),
        "machines_missed": sum(r.verdict != "machine" for r in machines),
        "machine_verdict_s": _stats(
            [r.decided_after_s for r in machines if r.verdict == "machine" and r.decided_after_s]
        ),
        "message_after_beep_s": _stats(
            [r.message_after_beep_s for r in machines if r.message_after_beep_s is not None]
        ),
        "hello_to_opening_s": _stats(
            [r.opening_after_speech_s for r in people if r.opening_after_speech_s is not None]
        ),
        "openings_withdrawn_on_machines": sum(r.withdrawn for r in machines),
        "openings_held_people": sum(r.openings_held for r in people),
        "openings_held_machines": sum(r.openings_held for r in machines),
        "verdict_sources": dict(Counter(f"{r.truth}:{r.source}" for r in results)),
        "dispositions": dict(Counter(str(r.disposition) for r in machines)),
    }


def format_report(summary: dict[str, Any]) -> list[str]:
    """The summary as lines for the terminal."""

    def stats(s: dict[str, Any]) -> str:
        if not s["n"]:
            return "-"
        return f"p50 {s['p50']:.2f} s  p95 {s['p95']:.2f} s  max {s['max']:.2f} s  (n={s['n']})"

    confusion = summary["confusion"]
    lines = [f"{summary['answers']} answers", "truth \\ verdict   human  machine  unknown  none"]
    for truth in (PERSON, MACHINE):
        cells = [confusion.get(f"{truth}->{v}", 0) for v in ("human", "machine", "unknown", "none")]
        lines.append(f"{truth:<17} " + "  ".join(f"{c:>6}" for c in cells))
    lines += [
        f"accuracy {summary['accuracy']:.1%}",
        f"people taken for machines {summary['people_taken_for_machines']} "
        f"({summary['people_taken_for_machines_rate']:.1%})",
        f"machines missed {summary['machines_missed']}",
        f"machine verdict after the answer: {stats(summary['machine_verdict_s'])}",
        f"message start after the beep: {stats(summary['message_after_beep_s'])}",
        f"person's hello end to the opening: {stats(summary['hello_to_opening_s'])}",
        f"openings withdrawn on machines: {summary['openings_withdrawn_on_machines']}",
        f"openings stopped as the callee went on (people / machines): "
        f"{summary['openings_held_people']} / {summary['openings_held_machines']}",
        f"verdict sources: {summary['verdict_sources']}",
        f"machine outcomes: {summary['dispositions']}",
    ]
    return lines


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--count", type=int, default=210, help="answers (210)")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--no-asr", action="store_true", help="without the words strategy")
    p.add_argument("--json", help="also save per-answer results and figures here")
    p.add_argument("--verbose", action="store_true")


def add_parser(kinds: argparse._SubParsersAction) -> None:
    """Register ``callagent bench amd`` (in process for now)."""
    p = kinds.add_parser("amd", help="answering-machine detection over generated answers")
    _arguments(p)
    p.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    """Generate the answers, measure in process, print the figures."""
    from simulator.bench import kit as benchkit
    from simulator.bench.args import quiet_logs

    quiet_logs(args.verbose)
    answers = generate(args.count, seed=args.seed)
    recognizer = None if args.no_asr else load_recognizer()

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total} answers", end="" if done < total else "\n", flush=True)

    results = asyncio.run(measure_in_process(answers, recognizer=recognizer, progress=progress))
    summary = summarize(results)
    for line in format_report(summary):
        print(line)
    if args.json:
        from pathlib import Path

        benchkit.save_json(
            Path(args.json),
            {"bench": "amd", **summary, "results": [asdict(r) for r in results]},
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m simulator.bench.amd``: as ``callagent bench amd``."""
    parser = argparse.ArgumentParser(description="answering-machine detection bench")
    _arguments(parser)
    return run_bench(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
