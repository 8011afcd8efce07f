"""Weak labels for NLU calibration from recorded calls (no hand labelling).

A recorded turn carries what the classifier decided and how confident it was; what
the caller did next says whether it was right:

- a **clarify** turn followed by ``affirm``: the intent was right; by ``deny``: wrong;
- an **act** turn followed by ``deny``: wrong; followed by anything else (or ending
  the call): right (the caller carried on);
- a **repair** turn (low confidence or out of scope) followed by an acted-on intent
  ``X``: the caller rephrased, so the truth was ``X``;
- anything else is left unlabelled.

Only turns the embedded classifier decided (path ``classifier``) are used: the
thresholds being calibrated are its thresholds. The labels are biased toward the
agent being right when callers let mistakes pass, so use the recommendation as a
direction, and prefer a labelled validation set where one exists.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from integrations.nlu.base import IntentPrediction

AFFIRM = "affirm"
DENY = "deny"
REJECTED = "__rejected__"
"""Gold label of a decision the caller rejected (matches no intent)."""


@dataclass(frozen=True)
class RecordedTurn:
    """What a call record says about one caller turn."""

    intent: str | None
    confidence: float | None
    band: str | None
    path: str | None


@dataclass
class WeakLabels:
    """Predictions with inferred gold intents, and how each was inferred."""

    predictions: list[IntentPrediction] = field(default_factory=list)
    gold: list[str] = field(default_factory=list)
    rules: Counter[str] = field(default_factory=Counter)
    turns_seen: int = 0

    def add(self, turn: RecordedTurn, gold: str, rule: str) -> None:
        """Label one turn."""
        confidence = float(turn.confidence or 0.0)
        intent = turn.intent or ""
        self.predictions.append(IntentPrediction(intent, confidence, ((intent, confidence),)))
        self.gold.append(gold)
        self.rules[rule] += 1


def weak_labels(calls: Iterable[Sequence[RecordedTurn]]) -> WeakLabels:
    """Label the classifier's turns of each call (turns in call order, caller turns only)."""
    out = WeakLabels()
    for turns in calls:
        for i, turn in enumerate(turns):
            out.turns_seen += 1
            if turn.path != "classifier" or not turn.intent or turn.confidence is None:
                continue
            nxt = turns[i + 1] if i + 1 < len(turns) else None
            _label(out, turn, nxt)
    return out


def _label(out: WeakLabels, turn: RecordedTurn, nxt: RecordedTurn | None) -> None:
    if turn.intent in (AFFIRM, DENY):
        return
    next_intent = nxt.intent if nxt is not None else None
    if turn.band == "clarify":
        if next_intent == AFFIRM:
            out.add(turn, turn.intent or "", "clarify confirmed")
        elif next_intent == DENY:
            out.add(turn, REJECTED, "clarify denied")
    elif turn.band == "act":
        if next_intent == DENY:
            out.add(turn, REJECTED, "act denied")
        else:
            out.add(turn, turn.intent or "", "act accepted")
    elif turn.band == "repair" and nxt is not None:
        if nxt.band == "act" and next_intent not in (None, AFFIRM, DENY):
            out.add(turn, next_intent or "", "repair rephrased")
