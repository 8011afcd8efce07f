"""The agent definition model: persona, greeting, intents, knowledge base and policies.

These are the typed objects the dialogue and escalation processors are configured
with. ``bot/agent.py`` loads them from an agent YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class IntentAction(StrEnum):
    """What the dialogue does after answering an intent."""

    ANSWER = "answer"
    TRANSFER = "transfer"
    END_CALL = "end_call"


@dataclass(frozen=True)
class Slot:
    """A value an intent needs before it can be answered.

    Parameters:
        name: The placeholder used in the response template.
        entity: The NLU entity kind that fills it (e.g. ``datetime``).
        prompt: What the agent asks when the value is missing.
    """

    name: str
    entity: str
    prompt: str


@dataclass(frozen=True)
class Intent:
    """Something callers ask for, with example phrasings and the agent's answer."""

    name: str
    description: str
    examples: tuple[str, ...]
    response: str = ""
    action: IntentAction = IntentAction.ANSWER
    slots: tuple[Slot, ...] = ()


@dataclass(frozen=True)
class NLUConfig:
    """Per-agent NLU thresholds (defaults documented in the reference agent)."""

    act_threshold: float = 0.85
    clarify_threshold: float = 0.5
    llm_timeout_secs: float = 1.5


@dataclass(frozen=True)
class TransferConfig:
    """Where and how a call is handed to a human."""

    target: str = ""
    handoff_line: str = "Let me put you through to one of our team. Please hold."


@dataclass(frozen=True)
class AgentDefinition:
    """A whole agent: persona, greeting, intents, knowledge base and policies."""

    name: str
    persona: str
    greeting: str
    intents: tuple[Intent, ...]
    repair: tuple[str, ...] = ("Sorry, could you say that again?",)
    fallback: str = "How can I help you?"
    clarify: str = "Did you want to {description}?"
    not_understood_limit: int = 3
    keypad: dict[str, str] = field(default_factory=dict)
    nlu: NLUConfig = field(default_factory=NLUConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    source: Path | None = None

    def intent(self, name: str) -> Intent | None:
        """The intent called ``name``, if the agent has one."""
        return next((i for i in self.intents if i.name == name), None)

    def training_examples(self) -> list[tuple[str, str]]:
        """Every (phrasing, intent name) pair, knowledge-base questions included."""
        return [(example, intent.name) for intent in self.intents for example in intent.examples]

    def fixed_lines(self) -> list[str]:
        """Every line the agent says word for word (templates with slots give their fixed part)."""
        lines = [self.greeting, self.fallback, self.transfer.handoff_line, *self.repair]
        for intent in self.intents:
            lines.append(intent.response.split("{")[0] if "{" in intent.response else intent.response)
            lines.extend(slot.prompt for slot in intent.slots)
            lines.append(self.clarify.format(description=intent.description))
        return [line for line in lines if line.strip()]
