"""``callagent bench speech``: the embedded speech engines on their own.

Piper speaks call-centre sentences, each goes through a phone line (8 kHz, μ-law) and
Moonshine transcribes it back: load times, transcription latency percentiles (alone and
with callers finishing at once), real-time factor and word error rate. Prints the
figures (and saves them as JSON); nothing is asserted.
"""

from __future__ import annotations

import argparse

from simulator.bench import args as bench_args


def add_parser(kinds: argparse._SubParsersAction) -> None:
    """Register ``callagent bench speech``."""
    p = kinds.add_parser(
        "speech", help="embedded ASR/TTS: load time, latency, real-time factor, word errors"
    )
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads per ASR run (1)")
    p.add_argument("--repeats", type=int, default=3, help="passes over the sentences (3)")
    p.add_argument(
        "--concurrency", type=int, default=2, help="transcriptions at once for contention (2)"
    )
    p.add_argument(
        "--cold",
        action="store_true",
        help="also time a cold ASR load (re-optimises the model into a temporary folder)",
    )
    bench_args.add_output_arguments(p)
    p.set_defaults(func=run_speech)


def run_speech(args: argparse.Namespace) -> int:
    """``callagent bench speech``."""
    from simulator.bench import kit as benchkit
    from simulator.bench.speech_engines import run_speech_bench

    bench_args.quiet_logs(args.verbose)
    results = run_speech_bench(
        num_threads=args.threads,
        repeats=args.repeats,
        cold=args.cold,
        concurrency=args.concurrency,
    )
    benchkit.save_json(args.json, {"bench": "speech", **results})
    return 0
