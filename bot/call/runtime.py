"""Process-wide resources: settings, the agent and the models every call shares.

Models load once per process (at server start-up) and are shared by all calls;
each call builds its own pipeline state on top of them (see ``bot/call/pipeline.py``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loguru import logger

from bot.agent import load_agent
from bot.settings import Settings
from integrations.speech.speculation import SpeculationBudget
from processors.agent_definition import AgentDefinition

if TYPE_CHECKING:
    from bot.call.handoff import HandoffDesk
    from bot.call.records import CallRecords
    from bot.operator.events import CallEventBus
    from integrations.crm.base import CRM
    from integrations.nlu.base import IntentClassifier, LLMIntentClassifier
    from integrations.nlu.entities import EntityExtractor
    from integrations.sentiment import SentimentAnalyzer
    from integrations.speech.base import SpeechRecognizer, SpeechSynthesizer


@dataclass
class Runtime:
    """Everything a call needs that outlives the call."""

    settings: Settings
    agent: AgentDefinition
    recognizer: SpeechRecognizer | None
    synthesizer: SpeechSynthesizer | None
    classifier: IntentClassifier
    entities: EntityExtractor
    llm_classifier: LLMIntentClassifier | None
    records: CallRecords | None = None
    """The process-wide call store (None: calls are not recorded)."""
    crm: CRM | None = None
    """The caller CRM (None: ``CALLAGENT_CRM=none``)."""
    sentiment: SentimentAnalyzer | None = None
    """Scores caller turns for the escalation trigger."""
    handoffs: HandoffDesk | None = None
    call_events: CallEventBus | None = None
    """Live calls' turn events for operators and simulators (None: not published)."""
    """Hand-offs in flight (whisper and transfer-status callbacks find them here)."""
    active_calls: int = 0
    """Calls running on this runtime now (kept by :func:`bot.call.pipeline.run_call`)."""
    speculation: SpeculationBudget = field(init=False)
    """Early (speculative) model runs every call shares: one per core, none from
    ``CALLAGENT_NO_EARLY_RUNS_FROM_CALLS`` simultaneous calls on."""

    def __post_init__(self) -> None:
        """Set up the speculation budget (it reads the live call count)."""
        busy_from = self.settings.no_early_runs_from_calls
        self.speculation = SpeculationBudget(
            os.cpu_count() or 1,
            busy=(lambda: self.active_calls >= busy_from) if busy_from > 0 else None,
        )

    @classmethod
    def load(cls, settings: Settings) -> Runtime:
        """Load the agent and the embedded models the settings ask for."""
        started = time.perf_counter()
        agent = load_agent(settings.agent_file)
        # The embedded engines load even when a cloud service is chosen: they are
        # the fallback a failing cloud service degrades to.
        recognizer = _load_recognizer(settings, agent)
        synthesizer = _load_synthesizer(agent, required=settings.tts == "piper")
        classifier = _load_classifier(settings, agent)
        from bot.call.nlu import make_llm_classifier
        from integrations.nlu.entities import EntityExtractor

        entities = EntityExtractor()
        llm_classifier = make_llm_classifier(settings, agent)
        from bot.call.records import open_call_records

        records = open_call_records(settings)
        logger.info(
            f"Runtime ready in {time.perf_counter() - started:.1f}s "
            f"(agent={agent.name!r}, stt={settings.stt}, tts={settings.tts}, llm={settings.llm})"
        )
        from bot.call.crm import make_crm
        from bot.call.handoff import HandoffDesk
        from integrations.sentiment import VaderSentiment

        return cls(
            settings,
            agent,
            recognizer,
            synthesizer,
            classifier,
            entities,
            llm_classifier,
            records,
            crm=make_crm(settings),
            sentiment=VaderSentiment(),
            handoffs=HandoffDesk(),
        )


def _load_recognizer(settings: Settings, agent: AgentDefinition) -> SpeechRecognizer:
    from integrations.speech.moonshine import MoonshineRecognizer

    language_model = None
    if settings.asr_lm_weight > 0:
        from bot.call.speech_lm import DEFAULT_GENERAL_CORPUS, build_agent_lm

        corpus = settings.asr_lm_corpus_dir or DEFAULT_GENERAL_CORPUS
        language_model = build_agent_lm(agent, corpus, domain_weight=0.5)
    recognizer = MoonshineRecognizer(
        cache_dir=settings.cache_dir / "moonshine",
        num_threads=settings.asr_threads,
        beam_width=settings.asr_beam_width,
        language_model=language_model,
        lm_weight=settings.asr_lm_weight,
        lm_word_bonus=settings.asr_lm_word_bonus,
    )
    return recognizer


def _load_synthesizer(agent: AgentDefinition, *, required: bool) -> SpeechSynthesizer | None:
    from integrations.speech.cache import CachingSynthesizer, warm_in_background
    from integrations.speech.piper import PiperSynthesizer
    from integrations.speech.tts import split_clauses

    try:
        synthesizer = PiperSynthesizer()
    except ImportError:
        if required:
            raise
        logger.warning("Piper is not installed: no embedded TTS fallback for the cloud TTS")
        return None
    cache = CachingSynthesizer(synthesizer)
    clauses = [clause for line in agent.fixed_lines() for clause in split_clauses(line)]
    warm_in_background(cache, clauses)
    return cache


def _load_classifier(settings: Settings, agent: AgentDefinition) -> IntentClassifier:
    from integrations.nlu.embedding import EmbeddingIntentClassifier
    from integrations.nlu.memo import MemoizedClassifier

    # memoized: the end-of-turn check and the router classify each turn's same text
    return MemoizedClassifier(
        EmbeddingIntentClassifier.for_examples(
            agent.training_examples(), cache_dir=settings.cache_dir / "nlu"
        )
    )
