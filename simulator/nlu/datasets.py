"""Readers for the intent benchmark formats in ``shared/datasets/``.

- CLINC150: a JSON object whose keys (``train``, ``val``, ``oos_train``,
  ``oos_val``, ...) hold lists of ``[text, intent]``; out-of-scope items have
  intent ``oos``.
- BANKING77: a CSV file with columns ``text,category``.

Two splits. ``val`` is the one every constant of the classifier was tuned on
(CLINC150 ``val`` + ``oos_val``; BANKING77 a seed-0 fifth of ``train``). ``test`` is
carved from what ``val`` runs only ever trained on, by a fixed rule (:func:`test_split`),
and is never tuned on: shared/ holds no published test split (see its README).

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
SPLITS = ("val", "test")
"""``val``: tuned on. ``test``: never tuned on (:func:`test_split`)."""
TEST_FRACTION = 0.2
"""Share of each intent's never-measured training examples that the ``test`` split holds."""
TEST_SEED = 15
"""Seed of the ``test`` carve (issue 15); never change it, or the split is a new one."""
DEFAULT_VAL_HOLDOUT = 0.2
"""BANKING77's tuned-on hold-out fraction (``nlu eval``'s default)."""
VAL_HOLDOUT_SEED = 0
"""Seed of BANKING77's tuned-on hold-out (``load_split``'s default)."""


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


def test_split(dataset: str, train_path: Path) -> Split:
    """The never-tuned ``test`` split, carved by a fixed rule from the training file.

    CLINC150: the test set is a seeded fifth of each intent's ``train`` examples
    (3,000) plus all of ``oos_train`` (100); the model trains on the other
    ``train`` examples plus ``val`` and ``oos_val`` (15,000 in scope + 100 out of
    scope, the sizes the ``val`` runs trained on). ``val`` runs trained on ``train``
    and ``oos_train`` and only ever measured ``val`` and ``oos_val``, so none of the
    test items was ever scored in tuning.

    BANKING77: the ``val`` runs measured a seed-0 fifth of ``train``; the test set is a
    seeded fifth of each intent's remaining examples (about 1,600), and the model
    trains on everything else (including the tuned-on fifth).

    Args:
        dataset: ``clinc150`` or ``banking77``.
        train_path: The training file (CLINC150: with keys ``train``, ``val``,
            ``oos_train``, ``oos_val``).
    """
    if dataset == "clinc150":
        kept, held = stratified_holdout(read_clinc(train_path, ["train"]), TEST_FRACTION, TEST_SEED)
        train = kept + read_clinc(train_path, ["val", "oos_val"])
        return Split(train, held + read_clinc(train_path, ["oos_train"]))
    if dataset == "banking77":
        rest, tuned = stratified_holdout(
            read_banking(train_path), DEFAULT_VAL_HOLDOUT, VAL_HOLDOUT_SEED
        )
        kept, held = stratified_holdout(rest, TEST_FRACTION, TEST_SEED)
        return Split(kept + tuned, held)
    raise ValueError(f"unknown dataset {dataset!r} (clinc150 or banking77)")


def load_split(
    dataset: str,
    train_path: Path,
    test_path: Path | None,
    *,
    holdout: float | None = None,
    limit_per_intent: int | None = None,
    seed: int = VAL_HOLDOUT_SEED,
    split: str = "val",
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
        split: ``val`` (the files and options above) or ``test`` (:func:`test_split`;
            ``test_path`` and ``holdout`` must then be unset).
    """
    if split == "test":
        if test_path is not None or holdout:
            raise ValueError("the test split is carved from --train: no --test or --holdout")
        carved = test_split(dataset, train_path)
        if limit_per_intent:
            return Split(
                _limit(carved.train, limit_per_intent), _limit(carved.test, limit_per_intent)
            )
        return carved
    if split != "val":
        raise ValueError(f"unknown split {split!r} ({' or '.join(SPLITS)})")
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
