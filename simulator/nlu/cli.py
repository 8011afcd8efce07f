"""``callagent nlu``: benchmark and calibrate the embedded intent classifier.

``callagent nlu eval --dataset clinc150|banking77 [--split val|test] [--train PATH]
[--test PATH] [--holdout FRACTION] [--json]`` trains on ``--train`` and prints in-scope
accuracy, OOS recall, precision and F1 (CLINC150), macro-F1, how many test items each band and
path took, and classification latency p50/p95 (one utterance at a time, one core).

``callagent nlu calibrate`` sweeps the act threshold on a validation set
(default CLINC150 ``val`` + ``oos_val``) and prints, per threshold, the share
acted on, the wrong-action rate, the clarify and escalate rates; it writes a
reliability diagram (SVG) and recommends thresholds for a target wrong-action rate.

``callagent nlu understanding --set FILE [--no-context] [--no-guard] [--json]`` decides
each request of a request set (``simulator/understanding/requests.py``) with the agent's
router (classifier, thresholds and act guard, no LLM), text only, one fresh router per
request and its context line decided first; it prints per intent how the router
answered: acted right, clarified right or wrong, repaired, acted wrong; plus the
confusions. ``--no-context`` judges every request as a call's first words, ``--no-guard``
applies the thresholds alone (with both: the figures before the router judged them).

Data defaults to ``../shared/datasets/`` beside the repository. CLINC150 files
are JSON (train: ``train`` + ``oos_train``; test: ``val`` + ``oos_val``).
BANKING77 files are CSV (``text,category``); without ``--test`` a stratified
``--holdout`` (default 0.2) of ``--train`` is the test set. ``--split test`` instead
trains and scores on the never-tuned split carved from ``--train``
(:func:`simulator.nlu.datasets.test_split`): report figures on it, tune on ``val``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from integrations.nlu.base import OUT_OF_SCOPE, NLUThresholds
from integrations.nlu.embedding import ClassifierSettings, EmbeddingIntentClassifier
from integrations.nlu.encoder import SentenceEncoder
from integrations.nlu.oos import FixedOOSThreshold
from simulator.nlu.calibration import sweep
from simulator.nlu.datasets import DEFAULT_VAL_HOLDOUT, SPLITS, Split, load_split
from simulator.nlu.evaluation import evaluate
from simulator.nlu.reliability_plot import write_reliability_svg

if TYPE_CHECKING:
    from integrations.nlu.base import IntentClassifier
    from processors.act_guard import ActGuard
    from processors.agent_definition import AgentDefinition

REPO_ROOT = Path(__file__).resolve().parents[2]
DATASETS = REPO_ROOT.parent / "shared" / "datasets"
DEFAULT_TRAIN = {
    "clinc150": DATASETS / "clinc150" / "train_val.json",
    "banking77": DATASETS / "banking77" / "train.csv",
}
DEFAULT_CACHE = Path("~/.cache/callagent/nlu-bench")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``nlu eval`` and ``nlu calibrate``."""
    nlu = subparsers.add_parser("nlu", help="benchmark and calibrate the intent classifier")
    commands = nlu.add_subparsers(dest="nlu_command", required=True)

    evaluate_parser = commands.add_parser("eval", help="train on --train, score on --test")
    _add_data_arguments(evaluate_parser)
    evaluate_parser.add_argument(
        "--act", type=float, default=NLUThresholds.act, help="act threshold"
    )
    evaluate_parser.add_argument(
        "--clarify", type=float, default=NLUThresholds.clarify, help="clarify threshold"
    )
    evaluate_parser.add_argument(
        "--split",
        choices=SPLITS,
        default="val",
        help="val: the tuned-on split (default); test: the never-tuned split carved from "
        "--train (simulator/nlu/datasets.py test_split; measure on it, never tune on it)",
    )
    evaluate_parser.set_defaults(func=run_eval)

    calibrate_parser = commands.add_parser("calibrate", help="sweep thresholds on a validation set")
    _add_data_arguments(calibrate_parser)
    calibrate_parser.add_argument(
        "--clarify", type=float, default=NLUThresholds.clarify, help="clarify threshold held fixed"
    )
    calibrate_parser.add_argument(
        "--target-wrong-rate",
        type=float,
        default=0.02,
        help="highest acceptable share of wrong actions among acted-on turns (default 0.02)",
    )
    calibrate_parser.add_argument(
        "--svg", type=Path, default=Path("nlu-reliability.svg"), help="reliability diagram path"
    )
    calibrate_parser.add_argument(
        "--from-calls",
        action="store_true",
        help="calibrate on recorded calls (labels inferred from what callers did next)",
    )
    calibrate_parser.add_argument(
        "--since", default="30d", help="with --from-calls: calls since (30d, 2026-11-01, ...)"
    )
    calibrate_parser.set_defaults(func=run_calibrate)

    understanding_parser = commands.add_parser(
        "understanding", help="text-only: how the agent's router answers a request set"
    )
    understanding_parser.add_argument(
        "--set", dest="request_set", type=Path, required=True, help="request set YAML file"
    )
    understanding_parser.add_argument(
        "--act", type=float, help="act threshold (default: the agent file's)"
    )
    understanding_parser.add_argument(
        "--clarify", type=float, help="clarify threshold (default: the agent file's)"
    )
    understanding_parser.add_argument(
        "--clear-act",
        type=float,
        help="act threshold for clearly heard words (default: the agent file's; 1: off)",
    )
    understanding_parser.add_argument(
        "--cache-dir",
        default=str(DEFAULT_CACHE),
        help=f"trained heads are cached here (default {DEFAULT_CACHE}); '' disables",
    )
    understanding_parser.add_argument(
        "--no-context",
        action="store_true",
        help="say no context line first: every request opens the call",
    )
    understanding_parser.add_argument(
        "--no-guard", action="store_true", help="the thresholds alone, without the act guard"
    )
    understanding_parser.add_argument(
        "--no-sound-alikes",
        action="store_true",
        help="classify the words as heard, without mending the agent's rare words back",
    )
    understanding_parser.add_argument(
        "--confirm-act",
        type=float,
        help="the act guard's confidence bar for irreversible intents (default: the agent "
        "file's nlu.confirm.act_threshold)",
    )
    understanding_parser.add_argument(
        "--confirm-margin",
        type=float,
        help="the act guard's lead over the runner-up (default: nlu.confirm.min_margin)",
    )
    understanding_parser.add_argument(
        "--clarify-runner-up-within",
        type=float,
        help="a clarifying question offers the runner-up too within this lead (default: the "
        "agent file's nlu.clarify_runner_up_within; 0: never)",
    )
    understanding_parser.add_argument(
        "--heard",
        action="store_true",
        help="decide what the recogniser hears of each request spoken in --voices over the "
        "phone line (offline; transcripts cached under the cache dir) instead of its words",
    )
    understanding_parser.add_argument(
        "--voices",
        default="slt,espeak:en-gb-x-rp",
        help="with --heard: the callers' voices (default slt,espeak:en-gb-x-rp, the "
        "understanding bench's report voices)",
    )
    understanding_parser.add_argument(
        "--noise", default="none", help="with --heard: none, white, pink or babble (none)"
    )
    understanding_parser.add_argument(
        "--snr", type=float, default=10.0, help="with --heard: SNR in dB (10)"
    )
    understanding_parser.add_argument(
        "--train-voices",
        default="",
        help="also train on the agent's examples as the recogniser hears them in these "
        "voices (piper[@SCALE], flite or espeak voices; never a report voice); heard once, "
        "cached under the cache dir",
    )
    understanding_parser.add_argument(
        "--heard-min-confidence",
        type=float,
        default=0.0,
        help="with --train-voices: leave out transcripts the recogniser was less sure of",
    )
    understanding_parser.add_argument("--json", action="store_true", help="print JSON")
    understanding_parser.set_defaults(func=run_understanding)


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=sorted(DEFAULT_TRAIN), default="clinc150")
    parser.add_argument("--train", type=Path, help="training file (default: shared/datasets)")
    parser.add_argument("--test", type=Path, help="test file (CLINC150 default: the --train file)")
    parser.add_argument(
        "--holdout",
        type=float,
        help="hold out this fraction of --train per intent as the test set "
        f"(BANKING77 default {DEFAULT_VAL_HOLDOUT} when --test is not given)",
    )
    parser.add_argument(
        "--limit-per-intent", type=int, help="use at most N examples per intent (quick runs)"
    )
    parser.add_argument(
        "--cache-dir",
        default=str(DEFAULT_CACHE),
        help=f"trained heads are cached here (default {DEFAULT_CACHE}); '' disables",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def _split(args: argparse.Namespace) -> Split:
    split = getattr(args, "split", "val")  # only ``eval`` has --split: never calibrate on test
    holdout = args.holdout
    if split == "val" and args.dataset == "banking77" and args.test is None and holdout is None:
        holdout = DEFAULT_VAL_HOLDOUT
    return load_split(
        args.dataset,
        args.train or DEFAULT_TRAIN[args.dataset],
        args.test,
        holdout=holdout,
        limit_per_intent=args.limit_per_intent,
        split=split,
    )


def _train(
    split: Split, cache_dir: Path | None
) -> tuple[EmbeddingIntentClassifier, EmbeddingIntentClassifier, float, float]:
    """Train (or load) the classifier.

    Returns:
        The batch classifier, the same head on a one-core encoder, the training
        seconds, and the one-core model load seconds (encoder + cached head).
    """
    has_oos = any(i == OUT_OF_SCOPE for _, i in split.train + split.test)
    # Without any out-of-scope item in the benchmark, rejecting is pure loss: turn it off.
    settings = ClassifierSettings() if has_oos else ClassifierSettings(oos=FixedOOSThreshold(0.0))
    encoder = SentenceEncoder(num_threads=os.cpu_count() or 1)
    started = time.perf_counter()
    if cache_dir is not None:
        classifier = EmbeddingIntentClassifier.for_examples(
            split.train, cache_dir, encoder=encoder, settings=settings
        )
    else:
        classifier = EmbeddingIntentClassifier.train(
            split.train, encoder=encoder, settings=settings
        )
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    single = SentenceEncoder(num_threads=1)
    if cache_dir is not None:
        single_classifier = EmbeddingIntentClassifier.for_examples(
            split.train, cache_dir, encoder=single, settings=settings
        )
    else:
        single_classifier = classifier.with_encoder(single)
    load_seconds = time.perf_counter() - started
    return classifier, single_classifier, train_seconds, load_seconds


def run_eval(args: argparse.Namespace) -> int:
    """``callagent nlu eval``."""
    split = _split(args)
    classifier, single, train_seconds, load_seconds = _train(split, _cache(args))
    report, predictions = evaluate(
        classifier,
        split.test,
        NLUThresholds(act=args.act, clarify=args.clarify),
        n_train=len(split.train),
        train_seconds=train_seconds,
        latency_classifier=single,
    )
    gold = [g for _, g in split.test]
    in_scope = [(p, g) for p, g in zip(predictions, gold, strict=True) if g != OUT_OF_SCOPE]
    top1 = sum(1 for p, g in in_scope if p.ranking and p.ranking[0][0] == g)
    report.extra["top1_accuracy_without_oos_rejection"] = top1 / max(len(in_scope), 1)
    report.extra["model_load_seconds"] = load_seconds
    if args.json:
        print(
            json.dumps({"dataset": args.dataset, "split": args.split, **asdict(report)}, indent=2)
        )
    else:
        print(f"dataset: {args.dataset}, split: {args.split}")
        print("\n".join(report.lines()))
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    """``callagent nlu calibrate``."""
    if args.from_calls:
        from simulator.nlu.from_calls import run_calibrate_from_calls

        return run_calibrate_from_calls(args)
    split = _split(args)
    classifier, _single, _train_seconds, _load = _train(split, _cache(args))
    texts = [t for t, _ in split.test]
    predictions = classifier.classify_batch(texts) if texts else []
    result = sweep(
        predictions,
        [g for _, g in split.test],
        clarify=args.clarify,
        target_wrong_rate=args.target_wrong_rate,
    )
    svg = write_reliability_svg(
        result.bins,
        args.svg,
        title=f"{args.dataset}: reliability (ECE {result.expected_calibration_error:.3f})",
        act=result.recommended_act,
        clarify=result.recommended_clarify,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "dataset": args.dataset,
                    **result.as_dict(),
                    "svg": str(svg),
                },
                indent=2,
            )
        )
        return 0
    print(f"dataset: {args.dataset}, {len(texts)} validation items, clarify {args.clarify}")
    print("\n".join(result.report_lines()))
    print(f"reliability diagram: {svg}")
    logger.debug(f"nlu calibrate wrote {svg}")
    return 0


def run_understanding(args: argparse.Namespace) -> int:
    """``callagent nlu understanding``."""
    from bot.agent import AgentFileError, load_agent
    from processors.act_guard import ActGuard
    from processors.clarify_choice import ClarifyChoice
    from simulator.nlu.understanding import HandOffRule, understand, understand_heard
    from simulator.understanding.requests import RequestSetError, load_request_set

    try:
        request_set = load_request_set(args.request_set)
        agent = load_agent(request_set.agent_file)
    except (RequestSetError, AgentFileError) as e:
        print(e, file=sys.stderr)
        return 2
    thresholds = agent.nlu.thresholds(act=args.act, clarify=args.clarify, clear_act=args.clear_act)
    heard: list[tuple[str, str]] = []
    if args.train_voices:
        from bot.settings import Settings
        from simulator.nlu.heard_examples import HeardFilter, heard_examples

        voices = [v.strip() for v in args.train_voices.split(",") if v.strip()]
        heard = HeardFilter(args.heard_min_confidence).pairs(
            heard_examples(agent.training_examples(), voices, Settings().cache_dir)
        )
        print(f"{len(heard)} heard examples from {', '.join(voices)}", file=sys.stderr)
    classifier = agent_classifier(agent, _cache(args), heard, sound_alikes=not args.no_sound_alikes)
    requests = request_set.requests
    if args.no_context:
        requests = [r.model_copy(update={"context": None}) for r in requests]
    guard = None if args.no_guard else _guard(args, ActGuard.for_agent(agent))
    choice = ClarifyChoice.for_agent(agent)
    if args.clarify_runner_up_within is not None:
        choice = replace(choice, runner_up_within=args.clarify_runner_up_within)
    hand_off = HandOffRule.for_agent(agent)
    if args.heard:
        report = understand_heard(
            classifier,
            requests,
            thresholds,
            agent=agent,
            voices=args.voices,
            noise=(args.noise, args.snr),
            guard=guard,
            choice=choice,
            hand_off=hand_off,
        )
    else:
        report = understand(
            classifier, requests, thresholds, guard=guard, choice=choice, hand_off=hand_off
        )
    if args.json:
        print(json.dumps({"set": str(args.request_set), **report.as_dict()}, indent=2))
    else:
        print(f"request set: {args.request_set} ({len(request_set.requests)} requests)")
        print("\n".join(report.lines()))
    return 0


def agent_classifier(
    agent: AgentDefinition,
    cache_dir: Path | None,
    heard: list[tuple[str, str]] | None = None,
    *,
    sound_alikes: bool = True,
) -> IntentClassifier:
    """The classifier the agent runs with (``integrations/nlu/agent_classifier.py``).

    With ``heard`` (the ``--train-voices`` candidate) the stock encoder's head also trains
    on them, uncached unless ``cache_dir`` is given. ``sound_alikes``: mend the agent's
    rare words the recogniser printed as a sound-alike, as calls do.
    """
    from bot.call.speech_lm import with_sound_alikes
    from bot.settings import Settings
    from integrations.nlu import agent_classifier as shipped

    settings = Settings()
    examples = agent.training_examples()
    classifier: IntentClassifier
    if heard and cache_dir is not None:
        classifier = EmbeddingIntentClassifier.for_examples(examples, cache_dir, heard=heard)
    elif heard:
        classifier = EmbeddingIntentClassifier.train(examples, heard=heard)
    else:
        classifier = shipped.agent_classifier(
            examples, cache_dir or settings.cache_dir / "nlu", tune=settings.nlu_tune_encoder
        )
    return with_sound_alikes(classifier, agent) if sound_alikes else classifier


def _guard(args: argparse.Namespace, guard: ActGuard) -> ActGuard:
    """The agent's act guard with the bars the command line sets."""
    if args.confirm_act is not None:
        guard = replace(guard, act_threshold=args.confirm_act)
    if args.confirm_margin is not None:
        guard = replace(guard, min_margin=args.confirm_margin)
    return guard


def _cache(args: argparse.Namespace) -> Path | None:
    return Path(args.cache_dir).expanduser() if args.cache_dir else None
