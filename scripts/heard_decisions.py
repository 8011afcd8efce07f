"""Offline: what the agent's router decides on what the recogniser heard (acted right / wrong).

Reads the JSON files ``scripts/heard_readings.py`` writes and decides each request as a call
would: a fresh router per request (the agent's classifier, thresholds and act guard, the
recogniser-doubt bar of the settings, no LLM), its context line decided first (exact words,
as ``callagent nlu understanding`` does), then the turn's readings through
:meth:`~processors.nlu_router.NLURouter.decide_heard`. Prints, per file, the in-scope shares
acted right / clarified / repaired / acted wrong (out-of-scope requests acted on count as
wrong), and with ``--out`` saves each decision with the readings' word confidences and the
classifier's guess on every reading (for trying rules).

    PYTHONPATH=$PWD python scripts/heard_decisions.py /tmp/bg/dev-*.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def main() -> int:
    """Run it."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, help="save every decision here (JSON)")
    args = parser.parse_args()

    from bot.agent import load_agent
    from bot.settings import Settings
    from integrations.nlu.base import NLUThresholds
    from integrations.nlu.entities import EntityExtractor
    from integrations.speech.nbest import Hypothesis, Recognition
    from processors.act_guard import ActGuard
    from processors.nlu_router import NLURouter
    from simulator.bench.args import quiet_logs
    from simulator.nlu.cli import DEFAULT_CACHE, agent_classifier
    from simulator.nlu.understanding import decided
    from simulator.understanding.requests import load_request_set

    quiet_logs(False)
    settings = Settings()
    saved: list[dict[str, Any]] = []
    classifier = None
    for path in args.files:
        data = json.loads(path.read_text())
        request_set = load_request_set(Path(data["set"]))
        agent = load_agent(request_set.agent_file)
        if classifier is None:
            classifier = agent_classifier(agent.training_examples(), DEFAULT_CACHE.expanduser())
        thresholds = NLUThresholds(act=agent.nlu.act_threshold, clarify=agent.nlu.clarify_threshold)
        guard = ActGuard.for_agent(agent)
        entities = EntityExtractor()
        counts: Counter[str] = Counter()
        wrong: list[str] = []
        for row in data["requests"]:
            router = NLURouter(
                classifier,
                None,
                thresholds,
                entities,
                guard=guard,
                unsure_below=settings.asr_unsure_confidence,
            )
            heard = Recognition(
                tuple(
                    Hypothesis(
                        h["text"],
                        token_logprob=h["token_logprob"],
                        word_logprobs=tuple(h["word_logprobs"]),
                    )
                    for h in row["readings"]
                )
            )
            if row["context"]:
                asyncio.run(router.decide(row["context"]))
            decision = asyncio.run(router.decide_heard(heard.text, heard))
            outcome = decided(row["intent"], decision.intent, decision.band)
            in_scope = row["intent"] != "out_of_scope"
            counts[("in " if in_scope else "oos ") + outcome] += 1
            if outcome == "acted_wrong":
                wrong.append(
                    f"    {row['intent']} -> {decision.intent} {decision.confidence:.2f} "
                    f"(heard {heard.confidence:.2f}, words "
                    f"{min(heard.word_confidences, default=0):.2f} min)"
                )
            saved.append(
                {
                    "file": path.name,
                    "intent": row["intent"],
                    "context": row["context"],
                    "text": row["text"],
                    "outcome": outcome,
                    "decided": decision.intent,
                    "band": decision.band.value,
                    "confidence": decision.confidence,
                    "margin": decision.margin,
                    "path": decision.path.value,
                    "heard_text": decision.text,
                    "heard_confidence": heard.confidence,
                    "readings": [
                        {
                            "text": h.text,
                            "words": [round(math.exp(lp), 3) for lp in h.word_logprobs],
                            "guess": list(classifier.classify(h.text).ranking[:2]),
                        }
                        for h in heard.hypotheses
                    ],
                }
            )
        n_in = sum(v for k, v in counts.items() if k.startswith("in "))
        n_oos = sum(v for k, v in counts.items() if k.startswith("oos "))

        def pct(key: str, n: int, counts: Counter[str] = counts) -> str:
            return f"{100 * counts[key] / max(n, 1):5.1f}%"

        print(
            f"{path.name}: in scope {n_in}: acted right {pct('in acted_right', n_in)}, "
            f"clarified right {pct('in clarified_right', n_in)}, "
            f"wrong {pct('in clarified_wrong', n_in)}, repaired {pct('in repaired', n_in)}, "
            f"ACTED WRONG {pct('in acted_wrong', n_in)} ({counts['in acted_wrong']}); "
            f"out of scope {n_oos}: acted on {counts['oos acted_wrong']}"
        )
        print("\n".join(wrong))
    if args.out:
        args.out.write_text(json.dumps(saved, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
