"""A short benchmark of the embedded speech engines (wired into ``callagent bench speech``).

Piper speaks a set of call-centre utterances; each goes through a phone line
(8 kHz, mu-law) and Moonshine transcribes it back. Reports load times, latency
percentiles, real-time factors and word error rate. It prints and returns the
figures and never asserts: timings on a shared 2-core machine vary by about
30 % from run to run.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from integrations.percentile import latency_summary
from integrations.speech.audio import PHONE_SAMPLE_RATE, phone_channel
from integrations.speech.moonshine import MoonshineRecognizer
from integrations.speech.moonshine_models import (
    DEFAULT_CACHE_DIR,
    default_model_dir,
    optimized_models,
)
from integrations.speech.tts import split_clauses

UTTERANCES: tuple[str, ...] = (
    "Yes, that works for me.",
    "I'd like to book a cleaning.",
    "Can I move my appointment to Friday afternoon?",
    "What time do you open on Saturday?",
    "No, thank you.",
    "My son has a check-up on the third of March.",
    "Do you take Delta Dental insurance?",
    "I have a terrible toothache on the left side.",
    "Please cancel my appointment for tomorrow.",
    "Could you call me back at 555-1234?",
)
"""Short caller turns (about 1-3 s of speech each), written as Moonshine writes them."""

PROMPTS: tuple[str, ...] = (
    "Thanks for calling Bright Smile Dental, this is the virtual assistant. How can I help?",
    "I have Tuesday at nine thirty, or Thursday at two. Which works better for you?",
    "Okay, you're booked for a cleaning on Friday, at three in the afternoon.",
)
"""Bot turns, for first-audio latency (whole sentence vs first clause)."""


def _summary(seconds: Sequence[float]) -> dict[str, float | int | None]:
    summary = latency_summary(seconds, scale=1000)
    return {k: summary[k] for k in ("mean_ms", "p50_ms", "p95_ms", "max_ms")}


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(Edit distance in words, reference length), ignoring case and punctuation."""

    def norm(text: str) -> list[str]:
        text = text.lower().replace("-", "")
        return "".join(c if c.isalnum() or c == "'" else " " for c in text).split()

    ref, hyp = norm(reference), norm(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def _bench_piper(
    results: dict[str, Any],
    *,
    repeats: int,
    utterances: Sequence[str],
    prompts: Sequence[str],
) -> list[tuple[str, bytes]]:
    """Time Piper into ``results``; return the utterances as 8 kHz phone audio."""
    from integrations.speech.piper import PiperSynthesizer

    synthesizer, seconds = _timed(PiperSynthesizer)
    results["piper_load_s"] = round(seconds, 2)
    rate = synthesizer.sample_rate
    for _ in synthesizer.synthesize("Warming up."):
        pass

    def speak(text: str) -> bytes:
        return b"".join(synthesizer.synthesize(text))

    def first_audio(text: str) -> float:
        started = time.perf_counter()
        next(iter(synthesizer.synthesize(text)))
        return time.perf_counter() - started

    whole: list[float] = []
    first_clause: list[float] = []
    clause_latency: list[float] = []
    synth_seconds = audio_seconds = 0.0
    for _ in range(repeats):
        for prompt in prompts:
            whole.append(first_audio(prompt))
            for index, clause in enumerate(split_clauses(prompt)):
                pcm, seconds = _timed(lambda c=clause: speak(c))
                clause_latency.append(seconds)
                synth_seconds += seconds
                audio_seconds += len(pcm) / 2 / rate
                if index == 0:
                    first_clause.append(seconds)
    results["piper_first_audio_whole_sentence"] = _summary(whole)
    results["piper_first_audio_first_clause"] = _summary(first_clause)
    results["piper_latency_per_clause"] = _summary(clause_latency)
    results["piper_rtf"] = round(synth_seconds / audio_seconds, 3)

    calls = [(text, phone_channel(speak(text), rate)) for text in utterances]
    durations = [len(pcm) / 2 / PHONE_SAMPLE_RATE for _, pcm in calls]
    results["utterance_seconds"] = {
        "min": round(min(durations), 2),
        "max": round(max(durations), 2),
    }
    return calls


def run_speech_bench(
    *,
    cache_dir: Path | None = None,
    num_threads: int = 1,
    repeats: int = 3,
    cold: bool = True,
    concurrency: int = 2,
    utterances: Sequence[str] = UTTERANCES,
    prompts: Sequence[str] = PROMPTS,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure the embedded speech engines and print a summary.

    Args:
        cache_dir: Moonshine's optimised-model cache (default
            ``~/.cache/callagent/moonshine``); built here if missing.
        num_threads: onnxruntime threads per Moonshine inference.
        repeats: Passes over the utterances for the latency figures.
        cold: Also time a cold Moonshine load (optimising into a temporary
            folder: several seconds and ~270 MB of temporary disk).
        concurrency: Simultaneous transcriptions for the contention figure
            (as with that many callers finishing a turn at once); 0 or 1 skips it.
        utterances: Caller sentences (spoken by Piper, sent through a phone line).
        prompts: Bot sentences for the first-audio figures.
        echo: Where the summary lines go.

    Returns:
        The figures, in seconds or milliseconds as the key names say.

    """
    cache_dir = (cache_dir or DEFAULT_CACHE_DIR).expanduser()
    results: dict[str, Any] = {"num_threads": num_threads}
    calls = _bench_piper(results, repeats=repeats, utterances=utterances, prompts=prompts)
    gc.collect()

    # --- Moonshine -----------------------------------------------------------------
    if cold:
        with tempfile.TemporaryDirectory(prefix="moonshine-bench-") as scratch:
            recognizer, seconds = _timed(
                lambda: MoonshineRecognizer(cache_dir=Path(scratch), num_threads=num_threads)
            )
            del recognizer
            gc.collect()
        results["moonshine_load_cold_s"] = round(seconds, 2)
    optimized_models(default_model_dir(), cache_dir)  # make sure the cache exists
    recognizer, seconds = _timed(
        lambda: MoonshineRecognizer(cache_dir=cache_dir, num_threads=num_threads)
    )
    results["moonshine_load_cached_s"] = round(seconds, 2)

    latencies: list[float] = []
    errors = words = empty = 0
    for _ in range(repeats):
        for text, pcm in calls:
            hypothesis, seconds = _timed(lambda p=pcm: recognizer.transcribe(p, PHONE_SAMPLE_RATE))
            latencies.append(seconds)
            e, n = word_errors(text, hypothesis)
            errors, words, empty = errors + e, words + n, empty + (not hypothesis)
    total_audio = repeats * sum(len(p) / 2 / PHONE_SAMPLE_RATE for _, p in calls)
    results["moonshine_latency"] = _summary(latencies)
    results["moonshine_rtf"] = round(sum(latencies) / total_audio, 3)
    results["moonshine_wer_phone"] = round(errors / words, 3)
    results["moonshine_empty_results"] = empty

    if concurrency > 1:
        contended: list[float] = []
        with ThreadPoolExecutor(concurrency) as pool:
            for _, pcm in calls:
                contended += pool.map(
                    lambda p: _timed(lambda: recognizer.transcribe(p, PHONE_SAMPLE_RATE))[1],
                    [pcm] * concurrency,
                )
        results[f"moonshine_latency_{concurrency}_concurrent"] = _summary(contended)

    for line in _format(results):
        echo(line)
    return results


def _format(results: dict[str, Any]) -> list[str]:
    lines = [f"Embedded speech bench (Moonshine threads={results['num_threads']})"]
    for key, value in results.items():
        if key == "num_threads":
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        lines.append(f"  {key:<40} {value}")
    return lines


if __name__ == "__main__":  # pragma: no cover - manual run
    run_speech_bench()
