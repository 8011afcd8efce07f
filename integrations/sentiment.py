"""Caller sentiment per turn, from VADER's lexicon (shipped inside the ``vaderSentiment`` wheel).

VADER scores a sentence's ``compound`` polarity in [-1, 1] from a hand-rated lexicon plus
rules for negation, intensifiers, caps and punctuation; it needs no model download and
takes well under a millisecond per turn. :func:`calibrate_threshold` picks the escalation
threshold from labelled caller turns (:data:`CALIBRATION_SET`): frustration with the call
or the business must trigger, while callers merely describing pain or a problem
("I have a terrible toothache") must not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


class SentimentAnalyzer(Protocol):
    """Scores how negative (-1) or positive (+1) one caller turn is."""

    def score(self, text: str) -> float:
        """The turn's polarity in [-1, 1]."""
        ...


class VaderSentiment:
    """VADER compound polarity."""

    def __init__(self) -> None:
        self._analyzer = SentimentIntensityAnalyzer()

    def score(self, text: str) -> float:
        """The turn's compound polarity in [-1, 1] (0 for empty text)."""
        if not text.strip():
            return 0.0
        return float(self._analyzer.polarity_scores(text)["compound"])


# Caller turns labelled True when the caller is frustrated or angry with the call/business.
CALIBRATION_SET: tuple[tuple[str, bool], ...] = (
    ("this is ridiculous, I've been trying to get through for an hour", True),
    ("you people are useless", True),
    ("I'm really angry about this bill", True),
    ("this is the worst service I have ever had", True),
    ("stop wasting my time", True),
    ("I'm so frustrated, nobody ever calls me back", True),
    ("this is terrible, you cancelled my appointment without telling me", True),
    ("I hate this stupid machine", True),
    ("are you kidding me, that's absurd", True),
    ("this is unacceptable and I want to complain", True),
    ("I am furious, you charged me twice", True),
    ("what a joke, this is pathetic", True),
    ("I'm fed up with this awful system", True),
    ("you keep getting it wrong, this is so annoying", True),
    ("this is a disgrace, I'm disgusted", True),
    ("I'm sick of this, it's horrible", True),
    ("what are your opening hours", False),
    ("I'd like to book a cleaning next week", False),
    ("I have a terrible toothache", False),
    ("my tooth is broken", False),
    ("I'm in a lot of pain", False),
    ("my filling fell out and it hurts", False),
    ("I need to cancel my appointment", False),
    ("no that's not right", False),
    ("sorry, I didn't hear you", False),
    ("I can't make it on tuesday", False),
    ("do you take my insurance", False),
    ("thank you so much, that's great", False),
    ("no thanks, that's all", False),
    ("my gums are bleeding a lot", False),
    ("I'm worried about my son's teeth", False),
    ("is it expensive", False),
    ("I lost my insurance card", False),
    ("can I talk to a person", False),
    ("I don't need the appointment anymore", False),
    ("my face is swollen", False),
)


@dataclass(frozen=True)
class Calibration:
    """A threshold and how it does on the labelled set."""

    threshold: float
    precision: float
    recall: float
    false_positive_rate: float


def calibrate_threshold(
    analyzer: SentimentAnalyzer,
    samples: tuple[tuple[str, bool], ...] = CALIBRATION_SET,
    *,
    max_false_positive_rate: float = 0.0,
) -> Calibration:
    """The threshold (score <= threshold triggers) with the best recall at a bounded FPR.

    Candidate thresholds sit midway between adjacent observed scores; ties are broken
    towards the more negative threshold (fewer surprises in production).
    """
    scored = sorted((analyzer.score(text), label) for text, label in samples)
    values = sorted({s for s, _ in scored})
    candidates = [round((a + b) / 2, 3) for a, b in zip(values, values[1:], strict=False)]
    positives = sum(1 for _, label in scored if label) or 1
    negatives = sum(1 for _, label in scored if not label) or 1
    best: Calibration | None = None
    for threshold in candidates:
        hits = [label for score, label in scored if score <= threshold]
        tp = sum(hits)
        fp = len(hits) - tp
        fpr = fp / negatives
        if fpr > max_false_positive_rate:
            continue
        result = Calibration(threshold, tp / len(hits) if hits else 1.0, tp / positives, fpr)
        if best is None or result.recall > best.recall:
            best = result
    if best is None:
        return Calibration(-1.0, 1.0, 0.0, 0.0)
    return best
