"""Text-only understanding: what the router does with each request of a request set.

No audio and no call: each request's exact words are decided by the agent's own router
(:meth:`processors.nlu_router.NLURouter.decide`, built as ``bot/call/nlu.py`` builds it
for a call, without an LLM): the classifier's band (:meth:`NLUThresholds.band
<integrations.nlu.base.NLUThresholds.band>`: an out-of-scope decision is repaired,
``confidence >= act`` acts, ``>= clarify`` clarifies, else repair), then the agent's
:class:`~processors.nlu_router.ActGuard` (an irreversible intent on doubt is confirmed, a
goodbye before any request is checked, a lone yes or no when nothing was asked is
repaired). Each request gets a fresh router, as each call does; a request with a context
line (:mod:`simulator.understanding.requests`) has that line decided first, so a yes
answers the question the line's reply asked and a goodbye follows a request, as on the
call bench. Each request ends as one of:

- ``acted_right``: acted on the intended intent;
- ``clarified_right`` / ``clarified_wrong``: asked "did you want to ...?" about the
  intended intent, or about another one;
- ``repaired``: asked to repeat (right for an out-of-scope request);
- ``acted_wrong``: acted on an intent the caller did not mean (the harmful outcome).

An out-of-scope request counts as handled right when it is repaired. Words that ask for a
person ("Representative.") are handed off by the call's escalation whatever the router
decided (:class:`HandOffRule`): acted right for the agent's hand-off intents, wrong for any
other, as ``callagent bench understanding`` counts a hand-off.

With ``heard`` (:mod:`simulator.understanding.heard`) the router decides what the call's
recogniser heard of each request in a voice (its best reading, other readings and
confidence) instead of the exact words.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from integrations.nlu.base import OUT_OF_SCOPE, IntentClassifier, IntentPrediction, NLUThresholds
from integrations.nlu.entities import EntityExtractor
from processors.act_guard import ActGuard
from processors.clarify_choice import ClarifyChoice
from processors.frames import Band, NLUResultFrame
from processors.nlu_router import NLURouter
from processors.person_request import PersonRequest
from simulator.understanding.heard import Heard
from simulator.understanding.requests import CallerRequest

if TYPE_CHECKING:
    from processors.agent_definition import AgentDefinition

Outcome = Literal["acted_right", "clarified_right", "clarified_wrong", "repaired", "acted_wrong"]
OUTCOMES: tuple[Outcome, ...] = (
    "acted_right",
    "clarified_right",
    "clarified_wrong",
    "repaired",
    "acted_wrong",
)


def outcome(gold: str, prediction: IntentPrediction, thresholds: NLUThresholds) -> Outcome:
    """How the thresholds' band on ``prediction`` turns out for a request meaning ``gold``.

    The band before the router's guard (:func:`decided` judges the router's decision).
    """
    return decided(
        gold, prediction.intent, thresholds.band(prediction.intent, prediction.confidence)
    )


def decided(gold: str, intent: str, band: str, offered: Sequence[str] = ()) -> Outcome:
    """How a decision (``intent`` in ``band``) turns out for a request meaning ``gold``.

    A clarifying question is right when it offers ``gold`` (``offered``: the intents it
    offers, ``intent`` alone when empty).
    """
    if band == Band.REPAIR:
        return "repaired"
    right = intent == gold
    if band == Band.ACT:
        return "acted_right" if right else "acted_wrong"
    return "clarified_right" if right or gold in offered else "clarified_wrong"


@dataclass(frozen=True)
class HandOffRule:
    """Words that ask for a person are handed off, as a call's escalation does, any band."""

    person: PersonRequest
    intents: frozenset[str]
    """The intents a hand-off serves (``EscalationConfig.hand_off_intents``)."""

    @classmethod
    def for_agent(cls, agent: AgentDefinition) -> HandOffRule | None:
        """The agent's rule (None: its explicit-request trigger is off)."""
        trigger = agent.escalation.explicit_request
        if not trigger.enabled:
            return None
        return cls(PersonRequest(trigger.phrases), agent.escalation.hand_off_intents)

    def outcome(self, gold: str, decision: NLUResultFrame) -> Outcome | None:
        """The outcome of a turn handed off for its words (None: not handed off so)."""
        if self.person.asks(decision.text, decision.path):
            return "acted_right" if gold in self.intents else "acted_wrong"
        return None


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
    band: str = ""
    context: str | None = None
    """The caller line decided before the request, if any."""
    context_intent: str | None = None
    context_band: str | None = None
    voice: str = ""
    """The voice the request was heard in ("": its exact words)."""
    heard: str | None = None
    """What the recogniser heard (None: the exact words were decided)."""

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
    guard: ActGuard | None = None
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

    def overall(self) -> tuple[float, float]:
        """Shares of every request acted on right and wrong, as ``bench understanding`` counts.

        An out-of-scope request is right when repaired (the bench: recognised as out of scope).
        """
        n = max(len(self.results), 1)
        right = sum(
            r.outcome == ("repaired" if r.gold == OUT_OF_SCOPE else "acted_right")
            for r in self.results
        )
        return right / n, sum(r.outcome == "acted_wrong" for r in self.results) / n

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
        in_context = [r for r in self.results if r.context]
        return {
            "act_threshold": self.thresholds.act,
            "clarify_threshold": self.thresholds.clarify,
            "guard": self.guard is not None,
            "n_requests": len(self.results),
            "in_context": {
                "requests": len(in_context),
                "intents": list(dict.fromkeys(r.gold for r in in_context)),
                "context_acted": sum(r.context_band == Band.ACT for r in in_context),
            },
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
        guard = "the agent's act guard" if self.guard is not None else "no act guard"
        out = [f"thresholds: act {self.thresholds.act}, clarify {self.thresholds.clarify}; {guard}"]
        in_context = [r for r in self.results if r.context]
        if in_context:
            intents = ", ".join(dict.fromkeys(r.gold for r in in_context))
            acted = sum(r.context_band == Band.ACT for r in in_context)
            out.append(
                f"judged in context ({intents}): {len(in_context)} requests, "
                f"context line acted on in {acted}"
            )
        out.append(head)
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
        voices = list(dict.fromkeys(r.voice for r in self.results if r.voice))
        for voice in voices if len(voices) > 1 else ():
            rows = [r for r in self.results if r.voice == voice and r.gold != OUT_OF_SCOPE]
            out.append(
                f"{'  heard in ' + voice:<24} {len(rows):>3} "
                + " ".join(
                    f"{pct(sum(r.outcome == o for r in rows) / max(len(rows), 1)):>15}"
                    for o in OUTCOMES
                )
            )
        out.append(f"in scope, top guess right: {pct(self.top_right())}")
        out.append(
            f"out of scope: repaired {pct(self.share('repaired', in_scope=False))}, "
            f"acted on {pct(self.share('acted_wrong', in_scope=False))}"
        )
        right, wrong = self.overall()
        out.append(
            f"every request, as the call bench counts (out of scope repaired = right): "
            f"acted right {pct(right)}, acted wrong {pct(wrong)}"
        )
        confusions = self.confusions()
        if confusions:
            out.append("confusions (intended -> decided; repaired ones show the top guess):")
            out.extend(f"  {g} -> {p}: {n}" for g, p, n in confusions)
        return out


class _Recording:
    """The classifier, keeping its last prediction (the router's ``top`` guess is read off it)."""

    def __init__(self, classifier: IntentClassifier) -> None:
        self._classifier = classifier
        self.last: IntentPrediction | None = None

    @property
    def intents(self) -> tuple[str, ...]:
        return self._classifier.intents

    def classify(self, text: str) -> IntentPrediction:
        self.last = self._classifier.classify(text)
        return self.last


def understand(
    classifier: IntentClassifier,
    requests: Sequence[CallerRequest],
    thresholds: NLUThresholds,
    *,
    guard: ActGuard | None = None,
    entities: EntityExtractor | None = None,
    heard: Mapping[str, Heard] | None = None,
    voice: str = "",
    unsure_below: float = 0.0,
    choice: ClarifyChoice | None = None,
    hand_off: HandOffRule | None = None,
) -> UnderstandingReport:
    """Decide every request with a fresh router (its context line first), as a call would.

    Args:
        classifier: The agent's classifier.
        requests: The requests; each one's ``context`` (if any) is decided before it.
        thresholds: The band thresholds.
        guard: The agent's act guard (``ActGuard.for_agent``); None: the bands alone.
        entities: The entity extractor (default: a new one, as the agent runs).
        heard: What the recogniser heard of each request's and context line's text in
            ``voice`` (None: the exact words are decided).
        voice: The voice ``heard`` is of (recorded with each result).
        unsure_below: The router's recogniser confidence under which words are doubtful.
        choice: What a clarifying question offers (``ClarifyChoice.for_agent``; None: the
            decision's intent alone).
        hand_off: Words that ask for a person are handed off (``HandOffRule.for_agent``;
            None: the router's decision alone).
    """
    return asyncio.run(
        _understand(
            classifier,
            requests,
            thresholds,
            guard,
            entities or EntityExtractor(),
            _Hearing(heard, voice),
            unsure_below,
            choice or ClarifyChoice(),
            hand_off,
        )
    )


def understand_heard(
    classifier: IntentClassifier,
    requests: Sequence[CallerRequest],
    thresholds: NLUThresholds,
    *,
    agent: AgentDefinition,
    voices: str,
    noise: tuple[str, float],
    guard: ActGuard | None = None,
    choice: ClarifyChoice | None = None,
    hand_off: HandOffRule | None = None,
) -> UnderstandingReport:
    """Every request decided on what the recogniser hears of it in each voice (``--heard``).

    Args:
        classifier: The agent's classifier.
        requests: The requests (context lines heard and decided first).
        thresholds: The band thresholds.
        agent: The agent (its words bias the recogniser, as on calls).
        voices: The voices, as ``--voices`` takes them (``slt,rms``, ``default``...).
        noise: The condition: noise kind (``none``, ``babble``...) and SNR in dB.
        guard: The agent's act guard; None: the bands alone.
        choice: What a clarifying question offers; None: the decision's intent alone.
        hand_off: Words that ask for a person are handed off; None: the decision alone.
    """
    from bot.settings import Settings
    from simulator.understanding.heard import Condition, HeardRequests
    from simulator.understanding.voices import voice_list

    settings = Settings()
    hearing = HeardRequests(settings.cache_dir, Condition(*noise), agent)
    texts = [line for r in requests for line in (r.context, r.text) if line]
    results = []
    for voice in voice_list(voices):
        report = understand(
            classifier,
            requests,
            thresholds,
            guard=guard,
            heard=hearing.hear(texts, voice),
            voice=voice,
            unsure_below=settings.asr_unsure_confidence,
            choice=choice,
            hand_off=hand_off,
        )
        results.extend(report.results)
    return UnderstandingReport(results, thresholds, guard)


@dataclass(frozen=True)
class _Hearing:
    """How a router gets a caller line: its exact words, or what the recogniser heard."""

    heard: Mapping[str, Heard] | None
    voice: str

    def text(self, line: str) -> str | None:
        return self.heard[line].text if self.heard is not None else None

    async def decide(self, router: NLURouter, line: str) -> NLUResultFrame:
        if self.heard is None:
            return await router.decide(line)
        h = self.heard[line]
        if not h.text.strip():  # the caller spoke and nothing was recognised: a repair
            return await router.decide("")
        return await router.decide(
            h.text,
            h.alternatives,
            heard_confidence=h.confidence,
            heard_words=h.word_confidences,
        )


async def _understand(
    classifier: IntentClassifier,
    requests: Sequence[CallerRequest],
    thresholds: NLUThresholds,
    guard: ActGuard | None,
    entities: EntityExtractor,
    hearing: _Hearing,
    unsure_below: float,
    choice: ClarifyChoice,
    hand_off: HandOffRule | None,
) -> UnderstandingReport:
    recording = _Recording(classifier)
    results = []
    for request in requests:
        router = NLURouter(
            recording, None, thresholds, entities, guard=guard, unsure_below=unsure_below
        )
        context: NLUResultFrame | None = None
        if request.context:
            context = await hearing.decide(router, request.context)
        recording.last = None
        decision = await hearing.decide(router, request.text)
        prediction = recording.last or IntentPrediction(decision.intent, decision.confidence)
        top = prediction.ranking[0][0] if prediction.ranking else prediction.intent
        handed_off = hand_off.outcome(request.intent, decision) if hand_off else None
        results.append(
            RequestResult(
                text=request.text,
                gold=request.intent,
                style=request.style,
                intent=decision.intent,
                confidence=round(decision.confidence, 4),
                top=top,
                outcome=handed_off
                or decided(
                    request.intent, decision.intent, decision.band, choice.offered(decision)
                ),
                band=decision.band.value,
                context=request.context,
                context_intent=context.intent if context else None,
                context_band=context.band.value if context else None,
                voice=hearing.voice,
                heard=hearing.text(request.text),
            )
        )
    return UnderstandingReport(results, thresholds, guard)
