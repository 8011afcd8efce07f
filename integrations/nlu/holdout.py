"""A deterministic per-intent hold-out split of labelled examples."""

from __future__ import annotations

import random
from collections.abc import Sequence

Example = tuple[str, str]
"""A labelled utterance: ``(text, intent)``."""


def stratified_holdout(
    examples: Sequence[Example], fraction: float, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """Split off ``fraction`` of every intent's examples (deterministic for a seed).

    Returns:
        ``(kept, held_out)``.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError("holdout fraction must be between 0 and 1")
    by_intent: dict[str, list[Example]] = {}
    for example in examples:
        by_intent.setdefault(example[1], []).append(example)
    rng = random.Random(seed)
    kept: list[Example] = []
    held: list[Example] = []
    for intent in sorted(by_intent):
        items = list(by_intent[intent])
        rng.shuffle(items)
        n_held = max(1, round(len(items) * fraction)) if len(items) > 1 else 0
        held.extend(items[:n_held])
        kept.extend(items[n_held:])
    return kept, held
