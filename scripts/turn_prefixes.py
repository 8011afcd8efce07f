"""Offline: does a turn end inside a request at a sentence boundary; how long do whole ones wait?

For every request of a request set, each prefix that ends at a sentence boundary ("My car
broke down." of "My car broke down. Can I come in on Friday?") is put to the call's
turn-taking rules (:class:`~processors.turn_hold.TurnHoldPolicy` with the agent's own
completeness check, and the semantic stop strategy's early end): the least pause after it
before the turn may end. The understanding bench's callers pause
:data:`~simulator.understanding.voices.SENTENCE_PAUSE_S` between sentences, and the VAD
needs about 0.064 s to hear them again, so a prefix whose turn may end sooner cuts the
caller off. The whole request's pause is the latency it costs over the early end
(``--heard VOICE`` uses what the recogniser hears of each prefix spoken alone, cached
under ``--cache``; without it, the exact words). No timing, no call: Smart Turn's verdict
is not modelled (a prefix the rules do not hold is counted as cut off).

    PYTHONPATH=$PWD python scripts/turn_prefixes.py \
        --set scenarios/dental/requests/understanding-dev.yaml --heard slt
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

SEMANTIC_END_S = 0.4
"""The early end on a recognised request: the VAD's 0.2 s plus the 0.2 s grace."""
CALLER_BACK_S = 0.6 + 0.064
"""When the bench's caller is heard again after a sentence (pause + VAD start)."""
COMMA_BACK_S = 0.2 + 0.064
"""... after a comma (flite and espeak-ng pause 0.1-0.26 s there; the VAD splits at 0.2 s)."""


def main() -> int:
    """Run it."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--set", type=Path, required=True)
    parser.add_argument("--heard", help="a voice: decide on what the recogniser hears")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/turn-prefixes-cache"))
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--commas", action="store_true", help="also prefixes ending at a comma")
    parser.add_argument(
        "--latency",
        action="store_true",
        help="also count the `bench latency` questions (the agent's own) the rules hold",
    )
    parser.add_argument(
        "--turn-end", type=float, help="nlu.turn_end_threshold (default: the agent file's)"
    )
    parser.add_argument(
        "--keep-told",
        action="store_true",
        help="hold every sentence that tells, even misheard words read as a question answered",
    )
    args = parser.parse_args()

    from bot.agent import load_agent
    from bot.call.nlu import make_completeness_check, make_misheard_answer_check
    from integrations.speech.nbest import Hypothesis, Recognition, TurnReadings
    from processors.turn_hold import GARBLED_BELOW, TurnHoldPolicy
    from simulator.bench.args import quiet_logs
    from simulator.nlu.cli import DEFAULT_CACHE, agent_classifier
    from simulator.understanding.requests import load_request_set

    quiet_logs(False)
    request_set = load_request_set(args.set)
    agent = load_agent(request_set.agent_file)
    classifier = agent_classifier(agent, DEFAULT_CACHE.expanduser())
    turn_end = agent.nlu.turn_end_threshold if args.turn_end is None else args.turn_end

    nlu = replace(agent.nlu, turn_end_threshold=turn_end)
    runtime = SimpleNamespace(
        classifier=classifier,
        agent=replace(agent, nlu=nlu),
        settings=SimpleNamespace(asr_unsure_confidence=GARBLED_BELOW),
    )
    readings = TurnReadings()  # what the recogniser heard of the text being decided
    is_complete = make_completeness_check(runtime, readings=readings)  # type: ignore[arg-type]
    misheard_answer = make_misheard_answer_check(runtime, readings)  # type: ignore[arg-type]

    requests = request_set.requests
    heard: dict[str, tuple[str, float]] = {}
    if args.heard:
        from simulator.understanding.heard import Condition, HeardRequests

        texts = [p for r in requests for p, _ in prefixes_of(r.text, args.commas)]
        texts += [r.text for r in requests]
        texts += latency_questions(agent) if args.latency else []
        texts = [t for t in texts if t]
        got = HeardRequests(args.cache, Condition()).hear(texts, args.heard)
        heard = {
            t: (h.text, h.confidence if h.confidence is not None else 1.0, h.alternatives)
            for t, h in got.items()
        }

    def wait(text: str, asked: bool) -> tuple[float, str]:
        said, confidence, others = heard.get(text, (text, 1.0, ()))
        logprob = math.log(max(confidence, 1e-6))
        readings.add(
            Recognition((Hypothesis(said, token_logprob=logprob), *(Hypothesis(o) for o in others)))
        )
        policy = TurnHoldPolicy(
            understood=is_complete,
            question_pending=lambda: asked,
            misheard_answer=None if args.keep_told else misheard_answer,
        )
        if not policy.text_pause(said) and is_complete(said):
            return SEMANTIC_END_S, said  # the semantic strategy's early end
        return policy.pause(said, confidence=confidence), said

    cut, prefixes, costs = 0, 0, []
    for r in requests:
        asked = r.context is not None and r.intent in ("affirm", "deny")
        for prefix, back_s in prefixes_of(r.text, args.commas):
            prefixes += 1
            needed, said = wait(prefix, asked)
            if needed < back_s:
                cut += 1
                print(f"CUT  {needed:.2f}s  {said!r}  <- {r.text!r} ({r.intent})")
            elif args.verbose:
                print(f"held {needed:.2f}s  {said!r}")
        needed, said = wait(r.text, asked)
        extra = max(0.0, needed - SEMANTIC_END_S) if needed else 0.0
        costs.append(extra)
        if extra and args.verbose:
            print(f"whole request waits {needed:.2f}s: {said!r} ({r.intent})")
    if args.latency:
        questions = latency_questions(agent)
        held_q = [q for q in questions if wait(q, False)[0] > SEMANTIC_END_S]
        for q in held_q:
            print(f"latency question held {wait(q, False)[0]:.2f}s: {heard.get(q, (q,))[0]!r}")
        print(f"bench latency: {len(held_q)} of {len(questions)} questions held", file=sys.stderr)
    held = sum(c > 0 for c in costs)
    print(
        f"{args.set.name}{' heard ' + args.heard if args.heard else ''}: {len(requests)} requests,"
        f" {prefixes} {'sentence/comma' if args.commas else 'sentence'}-boundary prefixes,"
        f" {cut} would be cut off;"
        f" {held} whole requests wait longer than the early end"
        f" (mean extra {sum(costs) / max(1, len(costs)) * 1000:.0f} ms over all requests)",
        file=sys.stderr,
    )
    return 0


def latency_questions(agent: object) -> list[str]:
    """The questions ``callagent bench latency`` asks (the agent's directly answered examples)."""
    from simulator.bench.latency import scripted_questions

    return [q for phrasings in scripted_questions(agent) for q in phrasings]


def prefixes_of(text: str, commas: bool) -> list[tuple[str, float]]:
    """A request's prefixes at its sentence (and comma) boundaries, each with its pause."""
    from simulator.understanding.voices import sentences

    parts = sentences(text)
    out: list[tuple[str, float]] = []
    for k, sentence in enumerate(parts):
        head = " ".join(parts[:k] + [""]).strip()
        if commas:
            pieces = sentence.split(",")
            for j in range(1, len(pieces)):
                out.append(((head + " " + ",".join(pieces[:j]) + ",").strip(), COMMA_BACK_S))
        if k + 1 < len(parts):
            out.append((" ".join(parts[: k + 1]), CALLER_BACK_S))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
