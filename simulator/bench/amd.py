"""``callagent bench amd``: answering-machine detection over a generated set of answers.

By default each answer is called through the real call path (the agent started here
dials the simulator's fake Twilio, a callee plays the answer: see
:mod:`simulator.bench.amd_call_path`); ``--in-process`` feeds the answers straight to the
detector and the embedded ASR, for quick tuning (:mod:`simulator.bench.amd_in_process`).
The set is the held-out one by default (phrasings, voices, noises and beeps the detector
was not tuned on, seed 1017); ``--set tuning`` is the one it was tuned on (seed 17).
Prints the confusion matrix, accuracy, people taken for machines, the machine verdict's
time, the message's start after the beep and the person's hello to the opening;
nothing is asserted.

    callagent bench amd [--set held-out|tuning] [--count 210] [--concurrency 4]
        [--provider-amd off|Enable|DetectMessageEnd] [--in-process] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import asdict
from typing import Any

from simulator.bench.amd_answers import TUNING, Answer, Phrasing, generate
from simulator.bench.amd_held_out import HELD_OUT
from simulator.bench.amd_report import AnswerResult, format_report, summarize

SETS: dict[str, tuple[Phrasing, int]] = {"held-out": (HELD_OUT, 1017), "tuning": (TUNING, 17)}
"""Each answer set and its default seed."""


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", choices=sorted(SETS), default="held-out", dest="answer_set")
    p.add_argument("--count", type=int, default=210, help="answers (210)")
    p.add_argument("--seed", type=int, help="default: 1017 held-out, 17 tuning")
    p.add_argument("--in-process", action="store_true", help="the detector alone (quick)")
    p.add_argument("--concurrency", type=int, default=4, help="calls at once (4)")
    p.add_argument(
        "--provider-amd",
        choices=["off", "Enable", "DetectMessageEnd"],
        default="off",
        help="Twilio's async AMD beside the agent's own (off)",
    )
    p.add_argument("--server", choices=["thread", "process"], default="process")
    p.add_argument("--reply", help="what a person says once after the opening (none)")
    p.add_argument("--no-asr", action="store_true", help="in process: without the words")
    p.add_argument("--json", help="also save per-answer results and figures here")
    p.add_argument("--verbose", action="store_true")


def add_parser(kinds: argparse._SubParsersAction) -> None:
    """Register ``callagent bench amd``."""
    p = kinds.add_parser("amd", help="answering-machine detection over generated answers")
    _arguments(p)
    p.set_defaults(func=run_bench)


def answers_for(args: argparse.Namespace) -> list[Answer]:
    """The answer set the arguments name."""
    phrasing, seed = SETS[args.answer_set]
    return generate(args.count, seed=seed if args.seed is None else args.seed, phrasing=phrasing)


def run_bench(args: argparse.Namespace) -> int:
    """Generate the answers, measure them, print the figures."""
    from simulator.bench.args import quiet_logs

    quiet_logs(args.verbose)
    answers = answers_for(args)

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total} answers", end="" if done < total else "\n", flush=True)

    extra: dict[str, Any] = {}
    if args.in_process:
        results = asyncio.run(_in_process(args, answers, progress))
        summary = summarize(results, path="in-process")
    else:
        from simulator.bench.amd_call_path import CallPathOptions, measure_call_path

        options = CallPathOptions(
            concurrency=args.concurrency,
            provider_amd=args.provider_amd,
            server=args.server,
            reply=args.reply,
            verbose=args.verbose,
        )
        print("starting the agent on loopback (loading models)...", flush=True)
        results, run = asyncio.run(measure_call_path(answers, options, progress=progress))
        summary = summarize(results, path="call")
        extra = {"run": run.as_dict(len(results)), "concurrency": args.concurrency}
        extra["provider_amd"] = args.provider_amd
    summary = {"set": args.answer_set, "seed": args.seed or SETS[args.answer_set][1], **summary}
    print(f"set {summary['set']} (seed {summary['seed']})")
    for line in format_report(summary):
        print(line)
    if "run" in extra:
        run_info = extra["run"]
        print(
            f"{args.concurrency} calls at once: wall {run_info['wall_s']} s, "
            f"{run_info['calls_per_minute']} calls/min, provider AMD {args.provider_amd}"
        )
    if args.json:
        from pathlib import Path

        from simulator.bench import kit as benchkit

        data = {"bench": "amd", **summary, **extra, "results": [asdict(r) for r in results]}
        benchkit.save_json(Path(args.json), data)
    return 0


async def _in_process(
    args: argparse.Namespace, answers: list[Answer], progress: Any
) -> list[AnswerResult]:
    from simulator.bench.amd_in_process import load_recognizer, measure_in_process

    recognizer = None if args.no_asr else load_recognizer()
    return await measure_in_process(answers, recognizer=recognizer, progress=progress)


def main(argv: list[str] | None = None) -> int:
    """``python -m simulator.bench.amd``: as ``callagent bench amd``."""
    parser = argparse.ArgumentParser(description="answering-machine detection bench")
    _arguments(parser)
    return run_bench(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
