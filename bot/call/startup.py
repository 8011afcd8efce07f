"""Builds the process's :class:`~bot.call.runtime.Runtime` from its pieces.

The agent file, the embedded speech and NLU models, the call store, the CRM, the sentiment
analyser and the hand-off desk load once per process (at server start-up); the runtime
only holds them, so the modules that build a piece may use the runtime without a cycle.
"""

from __future__ import annotations

import time

from loguru import logger

from bot.agent import load_agent
from bot.call.crm import make_crm
from bot.call.handoff_desk import HandoffDesk
from bot.call.nlu import make_llm_classifier
from bot.call.records import open_call_records
from bot.call.runtime import Runtime
from bot.settings import Settings
from integrations.nlu.base import IntentClassifier
from integrations.speech.base import SpeechRecognizer, SpeechSynthesizer
from processors.agent_definition import AgentDefinition


def load_runtime(settings: Settings) -> Runtime:
    """Load the agent and the embedded models the settings ask for."""
    started = time.perf_counter()
    agent = load_agent(settings.agent_file)
    # The embedded engines load even when a cloud service is chosen: they are
    # the fallback a failing cloud service degrades to.
    recognizer = _load_recognizer(settings)
    synthesizer = _load_synthesizer(agent, required=settings.tts == "piper")
    classifier = _load_classifier(settings, agent)
    from integrations.nlu.entities import EntityExtractor

    entities = EntityExtractor()
    llm_classifier = make_llm_classifier(settings, agent)
    records = open_call_records(settings)
    logger.info(
        f"Runtime ready in {time.perf_counter() - started:.1f}s "
        f"(agent={agent.name!r}, stt={settings.stt}, tts={settings.tts}, llm={settings.llm})"
    )
    from integrations.sentiment import VaderSentiment

    return Runtime(
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


def _load_recognizer(settings: Settings) -> SpeechRecognizer:
    from integrations.speech.moonshine import MoonshineRecognizer

    recognizer = MoonshineRecognizer(
        cache_dir=settings.cache_dir / "moonshine", num_threads=settings.asr_threads
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
