"""Text-only understanding: what the router would do with each request of a request set.

No audio and no call: each request's exact words go to the agent's classifier, and the
band follows the router's rule (:meth:`integrations.nlu.base.NLUThresholds.band`: an
out-of-scope decision is repaired, ``confidence >= act`` acts, ``>= clarify`` clarifies,
else repair). Each request ends as one of:

- ``acted_right``: acted on the intended intent;
- ``clarified_right`` / ``clarified_wrong``: asked "did you want to ...?" about the
  intended intent, or about another one;
- ``repaired``: asked to repeat (right for an out-of-scope request);
- ``acted_wrong``: acted on an intent the caller did not mean (the harmful outcome).

An out-of-scope request counts as handled right when it is repaired.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from integrations.nlu.base import OUT_OF_SCOPE, IntentClassifier, IntentPrediction, NLUThresholds

Outcome = Literal["acted_right", "clarified_right", "clarified_wrong", "repaired", "acted_wrong"]
OUTCOMES: tuple[Outcome, ...] = (
    "acted_right",
    "clarified_right",
    "clarified_wrong",
    "repaired",
    "acted_wrong",
)


def outcome(gold: str, prediction: IntentPrediction, thresholds: NLUThresholds) -> Outcome:
    """How the router's decision on ``prediction`` turns out for a request meaning ``gold``."""
    band = thresholds.band(prediction.intent, prediction.confidence)
    if band == "repair":
        return "repaired"
    right = prediction.intent == gold
    if band == "act":
        return "acted_right" if right else "acted_wrong"
    return "clarified_right" if right else "clarified_wrong"


@dataclass(frozen=True)
class RequestResult:
    """One request's decision."""

    text: str
    gold: str
    style: str
    intent: str
    confidence: float
    top: str
    outcome: Outcome

    @property
    def top_right(self) -> bool:
        """The classifier's best in-scope guess (or its out-of-scope verdict) was right."""
        if self.gold == OUT_OF_SCOPE:
            return self.intent == OUT_OF_SCOPE
        return self.top == self.gold


@dataclass
class UnderstandingReport:
    """Outcomes per intent and overall, with the confusions."""

    results: list[RequestResult]
    thresholds: NLUThresholds
    by_intent: dict[str, Counter[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for r in self.results:
            self.by_intent.setdefault(r.gold, Counter())[r.outcome] += 1

    def share(self, name: Outcome, gold: str | None = None, *, in_scope: bool = True) -> float:
        """Share of requests (of ``gold``, or of every in-scope one) that ended as ``name``."""
        rows = [
            r
            for r in self.results
            if (r.gold == gold if gold else (r.gold != OUT_OF_SCOPE) == in_scope)
        ]
        return sum(r.outcome == name for r in rows) / max(len(rows), 1)

    def top_right(self, *, in_scope: bool = True) -> float:
        """Share of in-scope (or out-of-scope) requests whose top guess was right."""
        rows = [r for r in self.results if (r.gold != OUT_OF_SCOPE) == in_scope]
        return sum(r.top_right for r in rows) / max(len(rows), 1)

    def confusions(self) -> list[tuple[str, str, int]]:
        """``(intended, decided, count)`` of wrong decisions, commonest first."""
        pairs = Counter(
            (r.gold, r.intent if r.outcome != "repaired" else f"{r.top} (repaired)")
            for r in self.results
            if r.outcome in ("acted_wrong", "clarified_wrong")
            or (r.gold == OUT_OF_SCOPE and r.outcome != "repaired")
            or (r.gold != OUT_OF_SCOPE and r.outcome == "repaired" and r.top != r.gold)
        )
        return sorted(((g, p, n) for (g, p), n in pairs.items()), key=lambda x: (-x[2], x))

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "act_threshold": self.thresholds.act,
            "clarify_threshold": self.thresholds.clarify,
            "n_requests": len(self.results),
            "in_scope": {name: self.share(name) for name in OUTCOMES}
            | {"top_right": self.top_right()},
            "out_of_scope": {
                "repaired": self.share("repaired", in_scope=False),
                "acted_wrong": self.share("acted_wrong", in_scope=False),
            },
            "by_intent": {
                gold: {name: counts.get(name, 0) for name in OUTCOMES}
                for gold, counts in self.by_intent.items()
            },
            "confusions": [
                {"intended": g, "decided": p, "count": n} for g, p, n in self.confusions()
            ],
            "requests": [r.__dict__ for r in self.results],
        }

    def lines(self) -> list[str]:
        """A human-readable table."""
        pct = lambda x: f"{100 * x:5.1f}%"  # noqa: E731
        head = f"{'intent':<24} {'n':>3} " + " ".join(f"{o:>15}" for o in OUTCOMES)
        out = [
            f"thresholds: act {self.thresholds.act}, clarify {self.thresholds.clarify}",
            head,
        ]
        for gold in sorted(self.by_intent):
            counts = self.by_intent[gold]
            n = sum(counts.values())
            out.append(
                f"{gold:<24} {n:>3} "
                + " ".join(f"{pct(counts.get(o, 0) / n):>15}" for o in OUTCOMES)
            )
        n_in = sum(1 for r in self.results if r.gold != OUT_OF_SCOPE)
        out.append(
            f"{'in scope, overall':<24} {n_in:>3} "
            + " ".join(f"{pct(self.share(o)):>15}" for o in OUTCOMES)
        )
        out.append(f"in scope, top guess right: {pct(self.top_right())}")
        out.append(
            f"out of scope: repaired {pct(self.share('repaired', in_scope=False))}, "
            f"acted on {pct(self.share('acted_wrong', in_scope=False))}"
        )
        confusions = self.confusions()
        if confusions:
            out.append("confusions (intended -> decided; repaired ones show the top guess):")
            out.extend(f"  {g} -> {p}: {n}" for g, p, n in confusions)
        return out


def understand(
    classifier: IntentClassifier,
    requests: Sequence[tuple[str, str, str]],
    thresholds: NLUThresholds,
) -> UnderstandingReport:
    """Classify every ``(text, intent, style)`` request and decide its band as the router would."""
    results = []
    for text, gold, style in requests:
        prediction = classifier.classify(text)
        top = prediction.ranking[0][0] if prediction.ranking else prediction.intent
        results.append(
            RequestResult(
                text=text,
                gold=gold,
                style=style,
                intent=prediction.intent,
                confidence=round(prediction.confidence, 4),
                top=top,
                outcome=outcome(gold, prediction, thresholds),
            )
        )
    return UnderstandingReport(results, thresholds)
