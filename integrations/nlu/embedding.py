"""The embedded intent classifier: MiniLM sentence embeddings + a trained head + OOS detection.

Built from ``(text, intent)`` pairs (an agent definition's example phrasings).
Training takes seconds; the trained head is cached in ``cache_dir`` under a hash
of the examples and settings, so a process restart loads it and a changed intent
list retrains it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from loguru import logger

from integrations.nlu.augment import augment, has_content
from integrations.nlu.base import OUT_OF_SCOPE, IntentPrediction
from integrations.nlu.classifier_settings import ClassifierSettings
from integrations.nlu.encoder import SentenceEncoder
from integrations.nlu.head import LinearIntentHead
from integrations.nlu.holdout import stratified_holdout
from integrations.nlu.neighbours import NearestExamples
from integrations.nlu.normalise import normalise

OOS_LABELS = frozenset({OUT_OF_SCOPE, "oos"})
"""Training labels that mark out-of-scope examples (they fit the threshold; corpora also
train them as a class, see ``ClassifierSettings.oos_class_from``)."""

HEAD_FORMAT = 5
RANKING_SIZE = 5

__all__ = ["OOS_LABELS", "ClassifierSettings", "EmbeddingIntentClassifier", "tuning_phrasings"]


class EmbeddingIntentClassifier:
    """Classifies an utterance in a few milliseconds on one core.

    Scores are the head's probabilities, blended with a kNN vote of the nearest
    training examples, times the similarity gate. A corpus's head may also have an
    ``out_of_scope`` class (``ClassifierSettings.oos_class_from``): when it scores
    above every intent the utterance is out of scope; it never enters a ranking. Satisfies
    :class:`integrations.nlu.base.IntentClassifier`.
    """

    def __init__(
        self,
        encoder: SentenceEncoder,
        head: LinearIntentHead,
        neighbours: NearestExamples,
        *,
        oos_threshold: float,
        knn_weight: float,
        settings: ClassifierSettings,
        normalised: bool = False,
        function_word_examples: frozenset[str] = frozenset(),
    ):
        """Wrap a trained head (use :meth:`for_examples` or :meth:`train`).

        Args:
            encoder: The sentence encoder.
            head: The trained head.
            neighbours: The training examples' embeddings.
            oos_threshold: Out of scope below this (gated) score.
            knn_weight: Weight of the kNN vote (0 = head only).
            settings: Gate and kNN settings.
            normalised: The head was trained on normalised texts (classify normalises too).
            function_word_examples: Normalised examples made of function words alone ("I'll
                be there"): such an utterance is understood only when it is one of these
                word for word (any other is out of scope, see :meth:`classify_batch`).
        """
        self._encoder = encoder
        self._head = head
        self._neighbours = neighbours
        self.oos_threshold = oos_threshold
        self.knn_weight = knn_weight
        self._settings = settings
        self._normalised = normalised
        self._function_word_examples = function_word_examples
        classes = head.classes
        self._oos_column = classes.index(OUT_OF_SCOPE) if OUT_OF_SCOPE in classes else None
        self._intent_columns = np.array([k for k, c in enumerate(classes) if c != OUT_OF_SCOPE])
        self._intents = tuple(classes[k] for k in self._intent_columns)

    def with_encoder(self, encoder: SentenceEncoder) -> EmbeddingIntentClassifier:
        """The same trained head on another encoder (e.g. a single-threaded one)."""
        if len(encoder.models) > len(self._encoder.models):
            encoder = encoder.primary()  # trained on the first model alone (a corpus)
        return EmbeddingIntentClassifier(
            encoder,
            self._head,
            self._neighbours,
            oos_threshold=self.oos_threshold,
            knn_weight=self.knn_weight,
            settings=self._settings,
            normalised=self._normalised,
            function_word_examples=self._function_word_examples,
        )

    @property
    def intents(self) -> tuple[str, ...]:
        """The in-scope intents (never ``out_of_scope``)."""
        return self._intents

    @classmethod
    def train(
        cls,
        examples: Sequence[tuple[str, str]],
        *,
        encoder: SentenceEncoder | None = None,
        settings: ClassifierSettings | None = None,
        heard: Sequence[tuple[str, str]] = (),
    ) -> EmbeddingIntentClassifier:
        """Train from ``(text, intent)`` pairs, without caching.

        Examples labelled ``out_of_scope`` (or ``oos``) fit the out-of-scope threshold;
        in a corpus (``ClassifierSettings.oos_class_from``) they are also a class.
        ``heard``: more in-scope pairs, the examples as the recogniser heard them (a
        candidate measured with ``callagent nlu understanding --heard --train-voices``, not
        used by the agent); they train as they are (not augmented) and do not count
        towards the size thresholds of ``settings``.
        """
        settings = settings or ClassifierSettings()
        encoder = settings.encoder_for(encoder or SentenceEncoder.shared(), len(examples))
        prepare = _preparer(examples, settings)
        given = sum(i not in OOS_LABELS for _, i in examples)
        in_scope, oos_texts = _phrasings(examples, settings)
        if len({i for _, i in in_scope}) < 2:
            raise ValueError("the classifier needs at least two intents with examples")
        started = time.perf_counter()
        written = {t for t, _ in in_scope}
        in_scope += dict.fromkeys(
            (t, i)
            for t, i in ((prepare(t), i) for t, i in heard if i not in OOS_LABELS)
            if t not in written
        )
        trained = in_scope
        if oos_texts and settings.oos_as_class(len(examples)):
            trained = in_scope + [(t, OUT_OF_SCOPE) for t in oos_texts]
        own = len(trained)
        trained = trained + [
            (prepare(t), OUT_OF_SCOPE) for t in settings.generic_oos(len(examples))
        ]
        embeddings = encoder.encode([t for t, _ in trained])
        keep = _unlike_the_agent(embeddings, own, settings.generic_oos_max_similarity)
        texts = [trained[k][0] for k in keep]
        labels = [trained[k][1] for k in keep]
        embeddings = embeddings[keep]
        knn_weight, held_out_scores = _select_knn_weight(embeddings, texts, labels, settings)
        head = LinearIntentHead.train(embeddings, texts, labels, settings.head)
        index = {c: k for k, c in enumerate(head.classes)}
        neighbours = NearestExamples(
            embeddings, np.array([index[i] for i in labels]), len(head.classes)
        )
        classifier = cls(
            encoder,
            head,
            neighbours,
            oos_threshold=0.0,
            knn_weight=knn_weight,
            settings=settings,
            normalised=settings.normalises(len(examples)),
            function_word_examples=_function_word_examples(examples, settings),
        )
        oos_scores = (
            classifier.intent_scores(encoder.encode(oos_texts), oos_texts).max(axis=1)
            if oos_texts
            else np.zeros(0, np.float32)
        )
        classifier.oos_threshold = threshold = settings.oos.fit(oos_scores, held_out_scores)
        logger.info(
            f"NLU classifier trained on {given} examples ({len(in_scope)} with variants"
            f"{f' and {len(heard)} heard' if heard else ''}), "
            f"{len(classifier.intents)} intents, {len(oos_texts)} out-of-scope examples "
            f"(+{len(keep) - own} shipped as a class) "
            f"({'a class and ' if classifier._oos_column is not None else ''}the threshold), "
            f"threshold {threshold:.3f}, "
            f"kNN weight {knn_weight}, in {time.perf_counter() - started:.1f}s"
        )
        return classifier

    @classmethod
    def for_examples(
        cls,
        examples: Sequence[tuple[str, str]],
        cache_dir: Path,
        *,
        encoder: SentenceEncoder | None = None,
        settings: ClassifierSettings | None = None,
        heard: Sequence[tuple[str, str]] = (),
    ) -> EmbeddingIntentClassifier:
        """Load the cached head for these examples, or train and cache it.

        Args:
            examples: ``(text, intent)`` pairs, e.g. ``AgentDefinition.training_examples()``.
            cache_dir: Folder for trained heads (one file per distinct example set).
            encoder: The sentence encoder (default: the process-wide one).
            settings: Training settings (part of the cache key).
            heard: The examples as the recogniser heard them (see :meth:`train`).
        """
        settings = settings or ClassifierSettings()
        encoder = settings.encoder_for(encoder or SentenceEncoder.shared(), len(examples))
        path = cache_dir / f"head-{cache_key(examples, settings, encoder, heard)}.npz"
        if path.exists():
            try:
                head, extra = LinearIntentHead.load(path)
                logger.info(f"NLU classifier loaded from cache ({len(head.classes)} intents)")
                neighbours = NearestExamples(
                    extra["examples"].astype(np.float32),
                    extra["example_labels"],
                    len(head.classes),
                )
                return cls(
                    encoder,
                    head,
                    neighbours,
                    oos_threshold=float(extra["oos_threshold"]),
                    knn_weight=float(extra["knn_weight"]),
                    settings=settings,
                    normalised=settings.normalises(len(examples)),
                    function_word_examples=_function_word_examples(examples, settings),
                )
            except (OSError, KeyError, ValueError) as e:
                logger.warning(f"NLU head cache unreadable ({type(e).__name__}); retraining")
        classifier = cls.train(examples, encoder=encoder, settings=settings, heard=heard)
        classifier._head.save(
            path,
            oos_threshold=np.float32(classifier.oos_threshold),
            knn_weight=np.float32(classifier.knn_weight),
            examples=classifier._neighbours.embeddings.astype(np.float16),
            example_labels=classifier._neighbours.labels,
        )
        return classifier

    def classify(self, text: str) -> IntentPrediction:
        """Classify one utterance (an empty one is out of scope with confidence 1)."""
        if not text.strip():
            return IntentPrediction(OUT_OF_SCOPE, 1.0)
        return self.classify_batch([text])[0]

    def classify_batch(self, texts: Sequence[str]) -> list[IntentPrediction]:
        """Classify several utterances at once (benchmarks)."""
        prepared = [normalise(t) if self._normalised else t for t in texts]
        scores = self.scores(self._encoder.encode(prepared), prepared)
        predictions = [self._prediction(row) for row in scores]
        if self._normalised:
            # Words that ask nothing ("the the the", "can I") are near something in the
            # two-model space (0.43 to the nearest example against 0.25 for one model),
            # unless the agent's examples say them word for word ("I'll be there").
            known = self._function_word_examples
            predictions = [
                p
                if has_content(t) or t in known
                else IntentPrediction(OUT_OF_SCOPE, 1.0, p.ranking)
                for t, p in zip(prepared, predictions, strict=True)
            ]
        return predictions

    def scores(self, embeddings: np.ndarray, texts: list[str]) -> np.ndarray:
        """Gated scores of every head class, ``(n, n_classes)``, of already normalised texts.

        The classes may include ``out_of_scope`` (see :meth:`intent_scores`).
        """
        return _blend(
            self._head.predict_proba(embeddings, texts),
            self._neighbours,
            embeddings,
            self.knn_weight,
            self._settings,
        )

    def intent_scores(self, embeddings: np.ndarray, texts: list[str]) -> np.ndarray:
        """Gated scores of the in-scope intents alone, ``(n, len(intents))``."""
        return self.scores(embeddings, texts)[:, self._intent_columns]

    def _prediction(self, probs: np.ndarray) -> IntentPrediction:
        scores = probs[self._intent_columns]
        top = np.argsort(-scores)[:RANKING_SIZE]
        ranking = tuple((self._intents[i], float(scores[i])) for i in top)
        best_intent, best = ranking[0]
        oos_wins = self._oos_column is not None and probs[self._oos_column] > best
        if oos_wins or best < self.oos_threshold:
            return IntentPrediction(OUT_OF_SCOPE, 1.0 - best, ranking)
        return IntentPrediction(best_intent, best, ranking)


def _unchanged(text: str) -> str:
    return text


def _preparer(
    examples: Sequence[tuple[str, str]], settings: ClassifierSettings
) -> Callable[[str], str]:
    """How texts are prepared for a training set this size (normalised when agent-sized)."""
    return normalise if settings.normalises(len(examples)) else _unchanged


def _phrasings(
    examples: Sequence[tuple[str, str]], settings: ClassifierSettings
) -> tuple[list[tuple[str, str]], list[str]]:
    """The head's in-scope ``(text, intent)`` pairs and the examples' out-of-scope texts.

    Both prepared (normalised for an agent-sized set); the in-scope ones with variants.
    """
    prepare = _preparer(examples, settings)
    in_scope = [(prepare(t), i) for t, i in examples if i not in OOS_LABELS]
    oos_texts = [prepare(t) for t, i in examples if i in OOS_LABELS]
    if settings.augment_per_example and len(in_scope) < settings.augment_below:
        in_scope = augment(in_scope, per_example=settings.augment_per_example)
    return in_scope, oos_texts


def tuning_phrasings(
    examples: Sequence[tuple[str, str]], settings: ClassifierSettings | None = None
) -> list[tuple[str, str]]:
    """What the encoder is tuned on (``integrations/nlu/tuning.py``): the head's phrasings.

    The in-scope ones as the head trains them, the agent's out-of-scope examples and the
    shipped requests for other businesses, both labelled ``out_of_scope``.
    """
    settings = settings or ClassifierSettings()
    prepare = _preparer(examples, settings)
    in_scope, oos_texts = _phrasings(examples, settings)
    oos = [*oos_texts, *(prepare(t) for t in settings.generic_oos(len(examples)))]
    return [*in_scope, *((t, OUT_OF_SCOPE) for t in oos)]


def _unlike_the_agent(embeddings: np.ndarray, own: int, max_similarity: float) -> np.ndarray:
    """The rows to train: the agent's ``own`` first, then the shipped ones unlike all of them.

    The rows after the first ``own`` (shipped out-of-scope requests) are kept when their
    cosine similarity to every one of the agent's rows is below ``max_similarity``.
    """
    extra = embeddings[own:]
    if not len(extra) or not own:
        return np.arange(len(embeddings))
    similarity = (extra @ embeddings[:own].T).max(axis=1)
    return np.concatenate([np.arange(own), own + np.flatnonzero(similarity < max_similarity)])


def cache_key(
    examples: Sequence[tuple[str, str]],
    settings: ClassifierSettings,
    encoder: SentenceEncoder,
    heard: Sequence[tuple[str, str]] = (),
) -> str:
    """A hash of everything the trained head depends on."""
    digest = hashlib.sha256()
    digest.update(f"format={HEAD_FORMAT};model={encoder.fingerprint()};".encode())
    digest.update(settings.fingerprint().encode())
    digest.update(json.dumps(sorted(examples)).encode())
    if heard:
        digest.update(json.dumps(sorted(heard)).encode())
    return digest.hexdigest()[:20]


def _blend(
    probs: np.ndarray,
    neighbours: NearestExamples,
    embeddings: np.ndarray,
    knn_weight: float,
    settings: ClassifierSettings,
) -> np.ndarray:
    nearest, votes = neighbours.nearest_and_vote(embeddings, settings.knn if knn_weight else None)
    if votes is not None:
        probs = (1.0 - knn_weight) * probs + knn_weight * votes
    return probs * settings.gate.factor(nearest)[:, None]


def _select_knn_weight(
    embeddings: np.ndarray, texts: list[str], labels: list[str], settings: ClassifierSettings
) -> tuple[float, np.ndarray | None]:
    """The kNN blend weight that scores best on a held-out tenth of the training set.

    Returns:
        The weight, and the held-out examples' best (gated) scores with it, which the
        out-of-scope threshold may use (None when nothing was held out: fewer than
        ``selection_min_examples`` examples, e.g. an agent file, or one candidate).
    """
    candidates = settings.knn_weights or (0.0,)
    if len(candidates) == 1 or len(texts) < settings.selection_min_examples:
        return candidates[0], None
    rows = list(range(len(texts)))
    kept, held = stratified_holdout([(str(r), labels[r]) for r in rows], 0.1, seed=1)
    fit = np.array([int(r) for r, _ in kept])
    check = np.array([int(r) for r, _ in held])
    head = LinearIntentHead.train(
        embeddings[fit], [texts[r] for r in fit], [labels[r] for r in fit], settings.head
    )
    index = {c: k for k, c in enumerate(head.classes)}
    neighbours = NearestExamples(
        embeddings[fit], np.array([index[labels[r]] for r in fit]), len(head.classes)
    )
    probs = head.predict_proba(embeddings[check], [texts[r] for r in check])
    gold = np.array([index.get(labels[r], -1) for r in check])
    blended = {w: _blend(probs, neighbours, embeddings[check], w, settings) for w in candidates}
    accuracy = {w: float((b.argmax(axis=1) == gold).mean()) for w, b in blended.items()}
    best = max(candidates, key=lambda w: (accuracy[w], -w))
    logger.debug(f"kNN blend weights on held-out training data: {accuracy} -> {best}")
    # The threshold's share is of in-scope items' best intent (an out-of-scope class is none).
    intents = np.array([k for k, c in enumerate(head.classes) if c != OUT_OF_SCOPE])
    in_scope = np.array([labels[r] != OUT_OF_SCOPE for r in check])
    return best, blended[best][np.ix_(in_scope, intents)].max(axis=1)


def _function_word_examples(
    examples: Sequence[tuple[str, str]], settings: ClassifierSettings
) -> frozenset[str]:
    """The in-scope examples, normalised, that are made of function words alone."""
    if not settings.normalises(len(examples)):
        return frozenset()
    prepared = (normalise(t) for t, i in examples if i not in OOS_LABELS)
    return frozenset(t for t in prepared if t and not has_content(t))
