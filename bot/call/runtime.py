"""Process-wide resources: settings, the agent and the models every call shares.

Models load once per process (at server start-up) and are shared by all calls;
each call builds its own pipeline state on top of them (see ``bot/call/pipeline.py``).
:func:`bot.call.startup.load_runtime` builds the runtime from its pieces.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from bot.settings import Settings
from integrations.speech.speculation import SpeculationBudget
from processors.agent_definition import AgentDefinition

if TYPE_CHECKING:
    from bot.call.handoff_desk import HandoffDesk
    from bot.call.records import CallRecords
    from integrations.crm.base import CRM
    from integrations.nlu.base import IntentClassifier, LLMIntentClassifier
    from integrations.nlu.entities import EntityExtractor
    from integrations.sentiment import SentimentAnalyzer
    from integrations.speech.base import SpeechRecognizer, SpeechSynthesizer
    from processors.call_events import CallEventObserver


class CallEventSink(Protocol):
    """Where each call publishes its turn events (:class:`bot.operator.events.CallEventBus`)."""

    def observer(self, call_id: str, provider_call_id: str | None = None) -> CallEventObserver:
        """The observer that publishes one call's events."""
        ...


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
    """Hand-offs in flight (whisper and transfer-status callbacks find them here)."""
    call_events: CallEventSink | None = None
    """Live calls' turn events for operators and simulators (None: not published)."""
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
