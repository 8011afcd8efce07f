"""Builds the process's :class:`~bot.call.runtime.Runtime` from its pieces.

The agent file, the embedded speech and NLU models, the call store, the CRM, the sentiment
analyser and the hand-off desk load once per process (at server start-up); the runtime
only holds them, so the modules that build a piece may use the runtime without a cycle.
"""

from __future__ import annotations

import copy
import time

from loguru import logger

from bot.agent import load_agent
from bot.call.crm import make_crm
from bot.call.handoff_desk import HandoffDesk
from bot.call.nlu import make_llm_classifier
from bot.call.records import open_call_records
from bot.call.runtime import AgentModels, Runtime, agent_key
from bot.settings import Settings
from integrations.nlu.base import IntentClassifier
from integrations.shared_state.factory import open_shared_state
from integrations.speech.base import SpeechRecognizer, SpeechSynthesizer
from integrations.speech.domain_lm import WordLanguageModel
from processors.agent_definition import AgentDefinition


def load_runtime(settings: Settings) -> Runtime:
    """Load the agent and the embedded models the settings ask for."""
    started = time.perf_counter()
    agent = load_agent(settings.agent_file)
    more = [load_agent(path) for path in settings.more_agent_files]
    # The embedded engines load even when a cloud service is chosen: they are
    # the fallback a failing cloud service degrades to.
    recognizer = load_recognizer(settings, agent)
    synthesizer = _load_synthesizer([agent, *more], required=settings.tts == "piper")
    classifier = _load_classifier(settings, agent)
    more_agents = {agent_key(a): _agent_models(settings, a, recognizer) for a in more}
    from integrations.nlu.entities import EntityExtractor

    entities = EntityExtractor()
    llm_classifier = make_llm_classifier(settings, agent)
    records = open_call_records(settings)
    logger.info(
        f"Runtime ready in {time.perf_counter() - started:.1f}s "
        f"(agents={[agent_key(a) for a in (agent, *more)]}, stt={settings.stt}, "
        f"tts={settings.tts}, llm={settings.llm})"
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
        more_agents=more_agents,
        shared=open_shared_state(settings.shared_state_url),  # connects on first use
    )


def _agent_models(
    settings: Settings, agent: AgentDefinition, recognizer: SpeechRecognizer | None
) -> AgentModels:
    """One more agent's own pieces: its classifiers, and the recogniser biased to its words."""
    started = time.perf_counter()
    models = AgentModels(
        definition=agent,
        classifier=_load_classifier(settings, agent),
        llm_classifier=make_llm_classifier(settings, agent),
        recognizer=_biased(recognizer, settings, agent),
    )
    logger.info(f"agent {agent_key(agent)!r} ready in {time.perf_counter() - started:.1f}s")
    return models


def load_recognizer(settings: Settings, agent: AgentDefinition | None) -> SpeechRecognizer:
    """The embedded recogniser as a call runs it, biased to ``agent``'s words if asked for.

    Args:
        settings: The ASR settings (beam, language-model weight and bonus).
        agent: The agent whose word model biases decoding (None: no bias).
    """
    from integrations.speech.moonshine import MoonshineRecognizer

    return MoonshineRecognizer(
        cache_dir=settings.cache_dir / "moonshine",
        num_threads=settings.asr_threads,
        beam_width=settings.asr_beam_width,
        language_model=None if agent is None else _language_model(settings, agent),
        lm_weight=settings.asr_lm_weight,
        lm_word_bonus=settings.asr_lm_word_bonus,
    )


def _language_model(settings: Settings, agent: AgentDefinition) -> WordLanguageModel | None:
    """The word model of the agent's domain the recogniser is biased with, if asked for."""
    if settings.asr_lm_weight <= 0:
        return None
    from bot.call.speech_lm import DEFAULT_GENERAL_CORPUS, build_agent_lm

    corpus = settings.asr_lm_corpus_dir or DEFAULT_GENERAL_CORPUS
    return build_agent_lm(agent, corpus, domain_weight=0.5)


def _biased(
    recognizer: SpeechRecognizer | None, settings: Settings, agent: AgentDefinition
) -> SpeechRecognizer | None:
    """The shared recogniser, or a copy biased to this agent's words (same loaded models)."""
    from integrations.speech.moonshine import MoonshineRecognizer

    if not isinstance(recognizer, MoonshineRecognizer) or recognizer.language_model is None:
        return recognizer
    biased = copy.copy(recognizer)
    biased.language_model = _language_model(settings, agent)
    return biased


def _load_synthesizer(agents: list[AgentDefinition], *, required: bool) -> SpeechSynthesizer | None:
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
    lines = dict.fromkeys(line for agent in agents for line in agent.fixed_lines())
    clauses = [clause for line in lines for clause in split_clauses(line)]
    warm_in_background(cache, clauses)
    return cache


def _load_classifier(settings: Settings, agent: AgentDefinition) -> IntentClassifier:
    from bot.call.speech_lm import with_sound_alikes
    from integrations.nlu.agent_classifier import agent_classifier
    from integrations.nlu.memo import MemoizedClassifier

    classifier = agent_classifier(
        agent.training_examples(), settings.cache_dir / "nlu", tune=settings.nlu_tune_encoder
    )
    # memoized: the end-of-turn check and the router classify each turn's same text
    return MemoizedClassifier(with_sound_alikes(classifier, agent))
