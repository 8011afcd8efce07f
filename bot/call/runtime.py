"""Process-wide resources: settings, the agent and the models every call shares.

Models load once per process (at server start-up) and are shared by all calls;
each call builds its own pipeline state on top of them (see ``bot/call/pipeline.py``).
:func:`bot.call.startup.load_runtime` builds the runtime from its pieces.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from bot.call.live_calls import LiveCalls
from bot.settings import Settings
from integrations.shared_state.base import SharedState
from integrations.shared_state.memory import MemorySharedState
from integrations.speech.speculation import SpeculationBudget
from processors.agent_definition import AgentDefinition

if TYPE_CHECKING:
    from bot.call.handoff_desk import HandoffDesk
    from bot.call.records import CallRecords
    from integrations.crm.base import CRM
    from integrations.nlu.base import IntentClassifier, LLMIntentClassifier
    from integrations.nlu.entities import EntityExtractor
    from integrations.sentiment import SentimentAnalyzer
    from integrations.shared_state.calls import CallInbox
    from integrations.speech.base import SpeechRecognizer, SpeechSynthesizer
    from processors.call_events import CallEventObserver


class CallEventSink(Protocol):
    """Where each call publishes its turn events (:class:`bot.operator.events.CallEventBus`)."""

    def observer(self, call_id: str, provider_call_id: str | None = None) -> CallEventObserver:
        """The observer that publishes one call's events."""
        ...


def agent_key(agent: AgentDefinition, fallback: str = "") -> str:
    """An agent's key: its file's stem (``dental_front_desk``), else ``fallback``."""
    return agent.source.stem if agent.source is not None else fallback


@dataclass(frozen=True)
class AgentModels:
    """What one agent has of its own; the speech models and the rest are shared.

    Parameters:
        definition: The agent file.
        classifier: Its intent classifier (trained on its examples).
        llm_classifier: Its LLM intent classifier (its intents), if an LLM is configured.
        recognizer: The shared recogniser, or a copy of it biased to the agent's words
            (``CALLAGENT_ASR_LM_WEIGHT``).
    """

    definition: AgentDefinition
    classifier: IntentClassifier
    llm_classifier: LLMIntentClassifier | None
    recognizer: SpeechRecognizer | None


@dataclass
class _CallCount:
    """Calls running now, shared by a runtime and its agents' views."""

    active: int = 0


@dataclass
class Runtime:
    """Everything a call needs that outlives the call.

    The fields ``agent``, ``classifier``, ``llm_classifier`` (and the recogniser, when it is
    biased to the agent's words) are the default agent's; :meth:`for_agent` gives the same
    runtime as another agent of the server sees it.
    """

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
    more_agents: dict[str, AgentModels] = field(default_factory=dict)
    """The server's other agents by key (``CALLAGENT_AGENT_FILES``)."""
    shared: SharedState = field(default_factory=MemorySharedState)
    """State every process of the deployment shares (in-process by default)."""
    inbox: CallInbox | None = None
    """Which process owns each live call, and requests to it (set by the server)."""
    live: LiveCalls = field(default_factory=LiveCalls)
    """The calls running in this process with their workers (kept by ``run_call``)."""
    _calls: _CallCount = field(default_factory=_CallCount, init=False, repr=False)
    _server: Runtime | None = field(default=None, init=False, repr=False)
    """The server's runtime, when this is another agent's view of it."""
    speculation: SpeculationBudget = field(init=False)
    """Early (speculative) model runs every call shares: one per core of this process's
    share of the host, none from ``CALLAGENT_NO_EARLY_RUNS_FROM_CALLS`` calls on the host."""

    @property
    def active_calls(self) -> int:
        """Calls running on this server now, every agent's (kept by ``run_call``)."""
        return self._calls.active

    @active_calls.setter
    def active_calls(self, value: int) -> None:
        self._calls.active = value

    @property
    def host_calls(self) -> int:
        """Calls the host's cores carry now, estimated: this process's times its workers.

        ``callagent serve --workers N`` runs N processes on the same cores, fed by one
        shared socket that spreads calls about evenly; the load thresholds
        (``CALLAGENT_*_FROM_CALLS``) are about the cores, so they compare with this.
        """
        return self._calls.active * max(1, self.settings.workers)

    @property
    def agent_key(self) -> str:
        """The key of the agent this runtime serves (its file's stem)."""
        return agent_key(self.agent, self.settings.agent_file.stem)

    def agent_keys(self) -> list[str]:
        """Every agent this server serves, the default first."""
        server = self._server or self
        default = server.agent_key
        return [default, *(key for key in server.more_agents if key != default)]

    def for_agent(self, key: str | None) -> Runtime:
        """This runtime as agent ``key`` sees it.

        The view has the agent's definition and classifiers, and the same speech models,
        CRM, records, call count and speculation budget as the server's runtime.

        Args:
            key: An agent's key (its file's stem); None (or the default agent's key) is
                the default agent.

        Raises:
            ValueError: no agent has that key (the message names the known ones).
        """
        server = self._server or self
        if key is None or key == server.agent_key:
            return server
        models = server.more_agents.get(key)
        if models is None:
            raise ValueError(
                f"unknown agent {key!r} (this server serves: {', '.join(self.agent_keys())})"
            )
        view = copy.copy(server)  # shares the call count, the budget and every model
        view._server = server
        view.agent = models.definition
        view.classifier = models.classifier
        view.llm_classifier = models.llm_classifier
        view.recognizer = models.recognizer
        return view

    def __post_init__(self) -> None:
        """Set up the speculation budget (it reads the live call count)."""
        busy_from = self.settings.no_early_runs_from_calls
        self.speculation = SpeculationBudget(
            (os.cpu_count() or 1) // max(1, self.settings.workers),  # this process's cores
            busy=(lambda: self.host_calls >= busy_from) if busy_from > 0 else None,
        )
