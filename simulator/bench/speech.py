"""``callagent bench speech``: the embedded speech engines on their own.

Piper speaks call-centre sentences, each goes through a phone line (8 kHz, μ-law) and
Moonshine transcribes it back: load times, transcription latency percentiles (alone and
with callers finishing at once), real-time factor and word error rate. Prints the
figures (and saves them as JSON); nothing is asserted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

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

    d = kinds.add_parser(
        "speech-domain",
        help="ASR word errors on the agent's domain over the phone line: greedy vs beam vs LM",
    )
    d.add_argument("--agent", type=Path, help="agent file (default: the configured one)")
    d.add_argument("--voices", default="slt,rms,awb,kal,espeak:en-us", help="caller voices")
    d.add_argument("--snr", type=float, default=10.0, help="babble SNR in dB (10)")
    d.add_argument("--every", type=int, default=3, help="use every Nth agent example (3; 1 = all)")
    d.add_argument(
        "--configs",
        default="greedy:1:0:0,beam4:4:0:0,beam4-lm:4:0.2:0.5",
        help="name:beam_width:lm_weight:word_bonus, comma-separated",
    )
    bench_args.add_output_arguments(d)
    d.set_defaults(func=run_speech_domain)


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


def run_speech_domain(args: argparse.Namespace) -> int:
    """``callagent bench speech-domain``."""
    from bot.agent import load_agent
    from bot.call.speech_lm import DEFAULT_GENERAL_CORPUS, build_agent_lm
    from bot.settings import Settings
    from integrations.speech.moonshine import MoonshineRecognizer
    from simulator.bench import kit as benchkit
    from simulator.bench.speech_domain import (
        DecoderConfig,
        evaluate,
        format_report,
        make_clips,
        sentence_groups,
    )

    bench_args.quiet_logs(args.verbose)
    settings = Settings()
    agent = load_agent(args.agent or settings.agent_file)
    corpus = settings.asr_lm_corpus_dir or DEFAULT_GENERAL_CORPUS
    lm = build_agent_lm(agent, corpus, domain_weight=0.5)
    configs = []
    for spec in args.configs.split(","):
        name, width, weight, bonus = spec.split(":")
        configs.append(DecoderConfig(name, int(width), float(weight), float(bonus)))
    examples = [text for text, _ in agent.training_examples()][:: max(1, args.every)]
    clips = make_clips(sentence_groups(examples), args.voices.split(","), snr_db=args.snr)
    recognizer = MoonshineRecognizer.shared(cache_dir=settings.cache_dir / "moonshine")

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total} clips", end="" if done < total else "\n", flush=True)

    report = evaluate(recognizer, clips, configs, lm, progress=progress)
    for line in format_report(report):
        print(line)
    benchkit.save_json(args.json, {"bench": "speech-domain", "results": report})
    return 0
