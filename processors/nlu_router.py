"""NLU router: a fast classifier first, an LLM only when unsure, then act / clarify / repair.

Consumes each caller turn and pushes an :class:`~processors.frames.NLUResultFrame`
downstream ahead of the turn's own frame:

- ``LLMContextFrame`` (from the user aggregator, at the end of each user turn):
  the last ``user`` message is classified; the result is pushed, then the
  context frame itself (the dialogue hands it to the LLM when configured).
  Speculative context frames are passed on unclassified.
- ``TranscriptionFrame`` (final transcripts, when no user aggregator sits in
  front, which otherwise consumes them): classified, then passed on.
- Keyed digits: pipecat's ``DTMFAggregator`` (placed before the user aggregator)
  turns key presses into a ``"DTMF: 1234#"`` transcription; such turns are
  decided without classification (path ``dtmf``, entities ``{"digits": "1234"}``),
  and the key ``0`` alone asks for a human (intent ``talk_to_human``). Raw
  ``InputDTMFFrame`` frames are passed on untouched.

An empty turn (the caller spoke, nothing was recognised: noise, or speech too
garbled to transcribe) is answered with a repair ("Sorry, could you say that
again?") only when the caller's voice lasted at least ``min_unheard_speech_s``
(timed from the VAD's speech frames); a cough or a click is let pass silently, and
so are empty turns after ``max_empty_repairs`` in a row (the failed-turn escalation
has had its chance by then).

N-best: when a turn comes with the recogniser's other readings (a
``TranscriptionFrame`` whose ``result`` is a :class:`~integrations.speech.nbest.Recognition`,
a context turn whose segments' readings the call's
:class:`~integrations.speech.nbest.TurnReadings` holds, or ``decide(text, alternatives)``)
and the classifier is not confident on the best reading, the other readings are
classified too and the one the classifier is most confident on is kept
(:func:`pick_reading`); a reading other than the recogniser's best acts only on a question
the agent only answers (:attr:`ActGuard.answers`: not what cannot be undone, an emergency
hand-off, nor a yes or no); otherwise its band is at most ``clarify``. Dev requests heard
offline (slt / rms / kal): acted right clean 312 -> 315 of 393, in 10 dB babble 117 -> 119;
acted wrong 2 -> 3 and 4 -> 5 (a question answered wrongly: "Can you tell me, Job?" with
the address).

Policy: the classifier answers when confident (``confidence >= thresholds.act``)
with no extra wait. Otherwise, if an LLM classifier is configured, it decides
within ``llm_timeout_s``; on timeout or failure the classifier's answer is used
with the clarify band. The band follows :meth:`NLUThresholds.band`.

Never act irreversibly on doubt (an :class:`ActGuard`, made from the agent file): an
irreversible intent (booking, moving, cancelling, ending the call, a transfer) in the act
band is moved to the clarify band ("Did you want to ...?") unless the reading is sure (a
stricter confidence, a clear lead over the runner-up, more than a fragment), or the
dialogue will ask for a slot before anything is written. A goodbye before the caller has
asked for anything is always checked, and a lone yes or no when nothing was asked is
repaired, not taken as an answer. A turn whose words are doubtful (not understood, empty,
or such a stray yes) is marked ``unsure``; a clearly worded request out of scope is not,
unless the recogniser itself was unsure of the words (its confidence below
``unsure_below``): in 10 dB babble most garbled turns read as clearly worded out-of-scope
requests and got the out-of-scope reply, never a repair or the keypad. A clearly worded
turn heard clearly (``heard_clearly``) that no intent reaches the clarify threshold for is
out of scope too: saying it again would not make it one of the agent's. Nor does such a
turn act (:class:`~processors.act_guard.HeardDoubt`): unless the words that matter in it
were heard well (their per-word confidences), a decision on it is asked about ("Did you
want to ...?"), and a yes or no is repaired.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    Frame,
    LLMContextFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from integrations.nlu.base import (
    IntentClassifier,
    IntentPrediction,
    LLMClassificationError,
    LLMIntentClassifier,
    NLUThresholds,
)
from integrations.nlu.entities import EntityExtractor
from integrations.speech.nbest import Recognition, TurnReadings
from processors.act_guard import (
    HEARD_CLEARLY,
    ActGuard,
    HeardDoubt,
    clearly_worded,
    none_of_ours,
)
from processors.frames import (
    OUT_OF_SCOPE,
    Band,
    DecisionPath,
    GreetingFrame,
    NLUResultFrame,
    TurnJoinedFrame,
)
from processors.nlu_readings import (
    ANSWERS,
    pick_reading,
    says_plainly,
    says_the_opposite,
    with_runner_up,
)
from processors.user_turn import user_text

DTMF_PATTERN = re.compile(r"^\s*DTMF:\s*([0-9*#A-Da-d]+)\s*$")
"""A transcription made by pipecat's ``DTMFAggregator`` (default prefix ``"DTMF: "``)."""
HUMAN_KEY = "0"
TALK_TO_HUMAN = "talk_to_human"
MIN_UNHEARD_SPEECH_S = 0.25
"""An empty turn with this much caller voice was speech that was not understood."""
MAX_EMPTY_REPAIRS = 3
MAX_TEXT_CHARS = 2000
"""Longer turns are cut before classification (keeps the time bounded)."""


class NLURouter(FrameProcessor):
    """Classifies each caller turn and pushes the decision as an ``NLUResultFrame``."""

    def __init__(
        self,
        classifier: IntentClassifier,
        llm: LLMIntentClassifier | None,
        thresholds: NLUThresholds,
        entity_extractor: EntityExtractor,
        llm_timeout_s: float = 1.5,
        min_unheard_speech_s: float = MIN_UNHEARD_SPEECH_S,
        max_empty_repairs: int = MAX_EMPTY_REPAIRS,
        guard: ActGuard | None = None,
        readings: TurnReadings | None = None,
        unsure_below: float = 0.0,
        opening_asks: bool = False,
        heard_clearly: float = HEARD_CLEARLY,
        **kwargs: Any,
    ):
        """Create the router from already-built adapters.

        Args:
            classifier: The fast embedded classifier.
            llm: The LLM classifier asked when the classifier is unsure, or None.
            thresholds: Band thresholds (per agent).
            entity_extractor: Finds dates, digits, money, phone numbers, yes/no.
            llm_timeout_s: Time budget of the LLM path.
            min_unheard_speech_s: An empty turn with at least this much caller voice
                is repaired; a shorter one (a cough, a click) gets no answer.
            max_empty_repairs: Empty turns in a row that get a repair.
            guard: Irreversible intents confirmed on doubt (None: act on the band alone).
            readings: The call's recogniser readings, segment by segment: a turn that ends
                as context text finds its other readings there (None: text alone).
            unsure_below: Recogniser confidence under which a turn's words are doubtful
                (``NLUResultFrame.unsure``) whatever the classifier makes of them, and act
                only if the words that matter were heard well (0: never).
            opening_asks: The greeting asks the callee a question (an outbound call's
                opening, "Will you be able to make it?"): once it is asked (``GreetingFrame``)
                a yes or no answers it, and an opt-out is acted on when sure.
            heard_clearly: Recogniser confidence from which a clearly worded turn that no
                intent reaches the clarify threshold for is out of scope (the honest answer),
                not repaired.
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._classifier = classifier
        self._llm = llm
        self._thresholds = thresholds
        self._entities = entity_extractor
        self._llm_timeout_s = llm_timeout_s
        self._min_unheard_s = min_unheard_speech_s
        self._max_empty_repairs = max_empty_repairs
        self._empty_repairs = 0
        self._voice_started: float | None = None
        self._voice_s = 0.0
        """Caller voice (VAD speech time) since the last decided turn."""
        self._guard = guard
        self._readings = readings
        self._doubt = HeardDoubt.with_bar(unsure_below)
        self._heard_clearly = heard_clearly
        self._requested = False
        """The caller has asked for something on this call."""
        self._asked = False
        """The agent asked a yes/no question: the last decision was a clarify, or the
        opening (``opening_asks``) was the last thing said."""
        self._opening_asks = opening_asks
        self._before_turn = (False, False)
        """(requested, asked) before the latest decision: restored when it is withdrawn."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Classify turns; pass every frame on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._voice_started = time.monotonic() - frame.start_secs
        elif isinstance(frame, VADUserStoppedSpeakingFrame) and self._voice_started is not None:
            stopped = time.monotonic() - frame.stop_secs
            self._voice_s += max(0.0, stopped - self._voice_started)
            self._voice_started = None
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._voice_s = 0.0  # voice before the bot's reply was not a request
        elif isinstance(frame, GreetingFrame) and self._opening_asks:
            self._asked = True  # the opening's question: the next turn answers it
        elif isinstance(frame, TurnJoinedFrame):
            # the caller went on after a fragment: decide the whole turn as that one was
            self._requested, self._asked = self._before_turn
        elif direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, LLMContextFrame) and not getattr(frame, "speculation", False):
                await self._turn_ended(user_text(frame))
            elif isinstance(frame, TranscriptionFrame):
                self._voice_s = 0.0
                heard = frame.result if isinstance(frame.result, Recognition) else None
                await self.push_frame(await self.decide_heard(frame.text, heard))
        await self.push_frame(frame, direction)

    async def _turn_ended(self, text: str) -> None:
        if text.strip():
            self._voice_s, self._empty_repairs = 0.0, 0
            heard = self._readings.take(text) if self._readings is not None else None
            await self.push_frame(await self.decide_heard(text, heard))
        elif self._voice_s < self._min_unheard_s:  # its voice counts if the next one is empty
            logger.debug(f"{self}: empty turn, {self._voice_s:.2f}s voice, not answered")
        elif self._empty_repairs >= self._max_empty_repairs:
            self._voice_s = 0.0
            logger.debug(f"{self}: empty turn, {self._empty_repairs} repaired in a row already")
        else:
            self._voice_s, self._empty_repairs = 0.0, self._empty_repairs + 1
            await self.push_frame(await self.decide(text))

    async def decide_heard(self, text: str, heard: Recognition | None) -> NLUResultFrame:
        """Decide a turn with what the recogniser heard, when known (its readings, its doubt).

        Args:
            text: The turn's text (the recogniser's best reading).
            heard: The recogniser's readings of it (None: the text alone).
        """
        if heard is None or not heard.hypotheses:
            return await self.decide(text)
        return await self.decide(
            text,
            heard.alternatives,
            heard_confidence=heard.confidence,
            heard_words=heard.word_confidences,
        )

    async def decide(
        self,
        text: str,
        alternatives: Sequence[str] = (),
        *,
        heard_confidence: float | None = None,
        heard_words: Sequence[float] = (),
    ) -> NLUResultFrame:
        """Decide one turn (never raises: failures become a repair decision).

        Args:
            text: The turn's text (the recogniser's best reading).
            alternatives: The recogniser's other readings of the same words, best first;
                consulted only when the classifier is not confident on ``text``.
            heard_confidence: The recogniser's confidence in ``text`` (None: unknown).
            heard_words: Its confidence in each word of ``text`` (empty: unknown).
        """
        started = time.perf_counter()
        text = text if isinstance(text, str) else ""
        try:
            result = await self._decide(text.strip()[:MAX_TEXT_CHARS], alternatives)
        except Exception as e:  # noqa: BLE001 - a turn must never break the pipeline
            logger.exception(f"{self}: NLU failed ({type(e).__name__}); repairing the turn")
            result = NLUResultFrame(path=DecisionPath.CLASSIFIER, band=Band.REPAIR)
        on_best = not result.text  # a decision on another reading carries that reading
        result.text = result.text or text
        if result.path is not DecisionPath.DTMF:
            result.heard_confidence = heard_confidence
        self._check(result, heard_words, on_best=on_best)
        result.elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        logger.debug(
            f"{self}: {result.intent} conf={result.confidence:.2f} band={result.band} "
            f"path={result.path} in {result.elapsed_ms} ms"
        )
        return result

    async def _decide(self, text: str, alternatives: Sequence[str] = ()) -> NLUResultFrame:
        if not text:
            return NLUResultFrame(intent=OUT_OF_SCOPE, path=DecisionPath.EMPTY, band=Band.REPAIR)
        dtmf = DTMF_PATTERN.match(text)
        if dtmf:
            return self._keyed(dtmf.group(1))
        prediction, entities = await asyncio.to_thread(self._classify_and_extract, text)
        others = [a.strip()[:MAX_TEXT_CHARS] for a in alternatives if a and a.strip()]
        if others and not self._is_confident(prediction):
            other = await asyncio.to_thread(self._other_reading, prediction, others)
            if other is not None:
                return other
        if self._is_confident(prediction) or self._llm is None:
            return self._result(prediction, entities, DecisionPath.CLASSIFIER)
        try:
            answer = await asyncio.wait_for(self._llm.classify(text), self._llm_timeout_s)
        except (TimeoutError, LLMClassificationError) as e:
            logger.warning(f"{self}: LLM classifier unavailable ({type(e).__name__}); clarifying")
            return self._result(prediction, entities, DecisionPath.CLASSIFIER, Band.CLARIFY)
        return self._result(with_runner_up(answer, prediction), entities, DecisionPath.LLM)

    def _check(
        self, result: NLUResultFrame, heard_words: Sequence[float] = (), *, on_best: bool = True
    ) -> None:
        """Mark doubtful words; keep doubt from acting (irreversibly); note what was asked."""
        self._before_turn = (self._requested, self._asked)
        keyed = result.path is DecisionPath.DTMF
        misheard = self._doubt.unsure(result.heard_confidence)
        if (
            on_best
            and self._guard is not None
            and self._guard.acts_heard_clearly(
                result, self._thresholds.clear_act, self._heard_clearly
            )
        ):
            # "A lot of time do you shop for the day?" heard at 0.8, read as the hours at 0.62
            # had been asked about ("Did you want to know our opening hours?")
            result.band = Band.ACT
        if none_of_ours(result, self._heard_clearly):
            # "Are you hiring any dental hygienists at the moment?", heard word for word, read
            # as a booking at 0.46 and the caller was asked to say it again (dev call bench)
            result.runner_up, result.intent = result.intent, OUT_OF_SCOPE
            result.confidence = round(1.0 - result.confidence, 4)
        heard_out_of_scope = (
            result.intent == OUT_OF_SCOPE
            and result.path in (DecisionPath.CLASSIFIER, DecisionPath.LLM)
            and result.confidence >= self._thresholds.clarify
            and clearly_worded(result.text)
            and not misheard
        )
        result.unsure = not keyed and (
            misheard or (result.band is Band.REPAIR and not heard_out_of_scope)
        )
        if (
            not keyed
            and result.band is Band.ACT
            and self._doubt.forbids_acting(
                result.text,
                result.heard_confidence,
                heard_words,
                irreversible=self._guard is not None and result.intent in self._guard.intents,
            )
        ):
            # words the recogniser doubts are asked about, never acted on: in 10 dB babble
            # garbled turns ("Rates casual") were acted on as clear requests (act_guard.py)
            logger.debug(f"{self}: {result.intent} on doubtful words; not acted on")
            result.band = Band.REPAIR if result.intent in ANSWERS else Band.CLARIFY
        if self._guard is not None and not keyed:
            if result.intent in ANSWERS:
                if result.band is not Band.REPAIR and not (self._requested or self._asked):
                    logger.debug(f"{self}: {result.intent} with nothing asked; repairing")
                    result.band, result.unsure = Band.REPAIR, True
                elif result.band is Band.CLARIFY and not result.unsure and says_plainly(result):
                    # "Yes, that would be great." read as a yes at 0.58: asking "Did you want
                    # to say yes?" helps no one when the words open with the yes itself
                    result.band = Band.ACT
                elif result.band is Band.ACT and says_the_opposite(result):
                    # "Yes, that would be great." heard as "Yes, that won't be great." read
                    # as a no at 0.91: words that contradict themselves are asked about
                    result.band = Band.CLARIFY
            elif result.band is Band.ACT:
                reason = self._guard.doubt(result, requested=self._requested, asked=self._asked)
                if reason is not None:
                    logger.debug(f"{self}: {result.intent} confirmed first ({reason})")
                    result.band = Band.CLARIFY
        # a doubted yes or no answers nothing: the question asked stays open for the next turn
        doubted_answer = result.intent in ANSWERS and result.band is Band.REPAIR and result.unsure
        self._asked = result.band is Band.CLARIFY or (self._asked and doubted_answer)
        ends_call = self._guard.ends_call if self._guard is not None else frozenset()
        if (
            keyed
            or heard_out_of_scope
            or (
                result.band is not Band.REPAIR
                and result.intent not in ANSWERS
                and result.intent not in ends_call
            )
        ):
            self._requested = True

    def _classify_and_extract(self, text: str) -> tuple[IntentPrediction, dict[str, Any]]:
        return self._classifier.classify(text), self._entities.extract(text)

    def _other_reading(
        self, prediction: IntentPrediction, others: list[str]
    ) -> NLUResultFrame | None:
        """The decision on another reading the classifier is surer of (None: keep the best)."""
        predictions = [prediction, *(self._classifier.classify(o) for o in others)]
        chosen = pick_reading(predictions)
        if chosen == 0:
            return None
        picked, reading = predictions[chosen], others[chosen - 1]
        band = Band(self._thresholds.band(picked.intent, picked.confidence))
        if band is Band.ACT and not (
            self._guard is not None and self._guard.answers_outright(picked.intent)
        ):
            band = Band.CLARIFY  # a second reading of the words is confirmed, not acted on
        result = self._result(
            picked, self._entities.extract(reading), DecisionPath.CLASSIFIER, band
        )
        result.text = reading
        return result

    def _is_confident(self, prediction: IntentPrediction) -> bool:
        return prediction.intent != OUT_OF_SCOPE and prediction.confidence >= self._thresholds.act

    def _result(
        self,
        prediction: IntentPrediction,
        entities: dict[str, Any],
        path: DecisionPath,
        band: Band | None = None,
    ) -> NLUResultFrame:
        if band is not None and prediction.intent == OUT_OF_SCOPE:
            band = Band.REPAIR
        runner_up = prediction.runner_up
        return NLUResultFrame(
            intent=prediction.intent,
            confidence=round(prediction.confidence, 4),
            runner_up=runner_up[0] if runner_up else None,
            margin=round(prediction.margin, 4),
            entities=entities,
            path=path,
            band=band or Band(self._thresholds.band(prediction.intent, prediction.confidence)),
        )

    def _keyed(self, keys: str) -> NLUResultFrame:
        digits = keys.rstrip("#")
        if digits == HUMAN_KEY:
            return NLUResultFrame(
                intent=TALK_TO_HUMAN,
                confidence=1.0,
                margin=1.0,
                entities={"digits": digits},
                path=DecisionPath.DTMF,
                band=Band.ACT,
            )
        return NLUResultFrame(
            intent="dtmf_entry",
            confidence=1.0,
            margin=1.0,
            entities=self._entities.digits(digits),
            path=DecisionPath.DTMF,
            band=Band.ACT if digits else Band.REPAIR,
        )
