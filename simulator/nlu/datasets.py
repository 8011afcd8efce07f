"""Readers for the intent benchmark formats in ``shared/datasets/``.

- CLINC150: a JSON object whose keys (``train``, ``val``, ``oos_train``,
  ``oos_val``, ...) hold lists of ``[text, intent]``; out-of-scope items have
  intent ``oos``.
- BANKING77: a CSV file with columns ``text,category``.

Any file of the same format works. Out-of-scope items are returned with the
intent ``out_of_scope``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from integrations.nlu.base import OUT_OF_SCOPE
from integrations.nlu.holdout import Example, stratified_holdout

CLINC_TRAIN_KEYS = ("train", "oos_train")
CLINC_TEST_KEYS = ("val", "oos_val")


@dataclass(frozen=True)
class Split:
    """Training and test examples for one benchmark run."""

    train: list[Example]
    test: list[Example]


def _normalise(intent: str) -> str:
    return OUT_OF_SCOPE if intent in ("oos", OUT_OF_SCOPE) else intent


def read_clinc(path: Path, keys: Sequence[str]) -> list[Example]:
    """Read the listed keys of a CLINC150-format JSON file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"{path}: no key {', '.join(missing)} (has {', '.join(data)})")
    return [(str(text), _normalise(str(intent))) for k in keys for text, intent in data[k]]


def read_banking(path: Path) -> list[Example]:
    """Read a BANKING77-format CSV file (``text,category``)."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"text", "category"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: need columns text,category")
        return [(row["text"], _normalise(row["category"])) for row in reader]


def load_split(
    dataset: str,
    train_path: Path,
    test_path: Path | None,
    *,
    holdout: float | None = None,
    limit_per_intent: int | None = None,
    seed: int = 0,
) -> Split:
    """Load the training and test examples of a benchmark.

    Args:
        dataset: ``clinc150`` or ``banking77``.
        train_path: The training file (CLINC150: keys ``train`` + ``oos_train``).
        test_path: The test file (CLINC150: keys ``val`` + ``oos_val``; default the
            training file). For BANKING77 without ``holdout`` it is read whole.
        holdout: Hold out this fraction of the training file per intent as the test
            set (BANKING77 has no test split in shared/; ``--test`` is then ignored).
        limit_per_intent: Keep at most this many examples per intent in both sets
            (quick runs and tests).
        seed: Seed of the hold-out split.
    """
    if dataset == "clinc150":
        train = read_clinc(train_path, CLINC_TRAIN_KEYS)
        test = read_clinc(test_path or train_path, CLINC_TEST_KEYS)
        if holdout:
            train, test = stratified_holdout(train, holdout, seed)
    elif dataset == "banking77":
        train = read_banking(train_path)
        if holdout:
            train, test = stratified_holdout(train, holdout, seed)
        elif test_path is not None:
            test = read_banking(test_path)
        else:
            raise ValueError("banking77 needs --test or --holdout")
    else:
        raise ValueError(f"unknown dataset {dataset!r} (clinc150 or banking77)")
    if limit_per_intent:
        train, test = _limit(train, limit_per_intent), _limit(test, limit_per_intent)
    return Split(train, test)


def _limit(examples: list[Example], per_intent: int) -> list[Example]:
    seen: dict[str, int] = {}
    out = []
    for example in examples:
        if seen.get(example[1], 0) < per_intent:
            seen[example[1]] = seen.get(example[1], 0) + 1
            out.append(example)
    return out
