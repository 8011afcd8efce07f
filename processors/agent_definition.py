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
    known_from: str = ""
    """A caller-record field that fills the slot without asking (e.g. ``appointment``)."""


@dataclass(frozen=True)
class Intent:
    """Something callers ask for, with example phrasings and the agent's answer."""

    name: str
    description: str
    examples: tuple[str, ...]
    response: str = ""
    action: IntentAction = IntentAction.ANSWER
    slots: tuple[Slot, ...] = ()
    response_known_caller: str = ""
    """The answer when the caller's CRM record is known (may use ``{first_name}``...)."""
    crm_update: str = ""
    """A CRM write-back after answering: ``move_appointment`` or ``cancel_appointment``."""


@dataclass(frozen=True)
class NLUConfig:
    """Per-agent NLU thresholds (defaults documented in the reference agent)."""

    act_threshold: float = 0.85
    clarify_threshold: float = 0.5
    llm_timeout_secs: float = 1.5


@dataclass(frozen=True)
class TransferConfig:
    """Where and how a call is handed to a human.

    ``target`` is a phone number (``+1555...``), a SIP URI (``sip:desk@pbx.example.com``)
    or a Twilio queue (``queue:front-desk``).
    """

    target: str = ""
    handoff_line: str = "Let me put you through to one of our team. Please hold."
    hold_line: str = "Please hold while I connect you."
    whisper: bool = True
    """Read the summary to the person answering before connecting the caller."""
    dial_timeout_secs: int = 25
    max_hold_secs: float = 120.0
    failure_line: str = "I'm sorry, I couldn't reach anyone on our team right now."
    callback_offer: str = "Would you like us to call you back as soon as someone is free?"
    callback_confirmed: str = "Okay, someone from our team will call you back shortly."
    callback_declined: str = "No problem. Is there anything else I can help you with?"


@dataclass(frozen=True)
class ExplicitRequestTrigger:
    """The caller asks for a person (intent, phrasing, or the keypad's 0)."""

    enabled: bool = True
    intents: tuple[str, ...] = ("talk_to_human",)
    phrases: tuple[str, ...] = ()
    """Extra regular expressions that count as asking for a person."""


@dataclass(frozen=True)
class FailedTurnsTrigger:
    """N turns in a row that were not understood (repair band)."""

    enabled: bool = True
    limit: int = 3


@dataclass(frozen=True)
class SentimentTrigger:
    """A caller turn more negative than ``threshold`` (VADER compound, -1..1)."""

    enabled: bool = True
    threshold: float = -0.53


@dataclass(frozen=True)
class OutOfScopeTrigger:
    """Intents the agent must not handle on its own (e.g. emergencies)."""

    enabled: bool = True
    intents: tuple[str, ...] = ()


@dataclass(frozen=True)
class MaxDurationTrigger:
    """The call has run longer than the agent may handle it alone."""

    enabled: bool = True
    seconds: float = 600.0


@dataclass(frozen=True)
class EscalationConfig:
    """When the agent hands a call to a person. Each trigger can be switched off."""

    explicit_request: ExplicitRequestTrigger = field(default_factory=ExplicitRequestTrigger)
    failed_turns: FailedTurnsTrigger = field(default_factory=FailedTurnsTrigger)
    negative_sentiment: SentimentTrigger = field(default_factory=SentimentTrigger)
    out_of_scope: OutOfScopeTrigger = field(default_factory=OutOfScopeTrigger)
    max_duration: MaxDurationTrigger = field(default_factory=MaxDurationTrigger)
    unavailable_line: str = (
        "I'm sorry, I can't transfer you right now, but I'm happy to help. What do you need?"
    )
    """Said instead of the hand-off line when the request cannot lead to a transfer."""


@dataclass(frozen=True)
class VerificationConfig:
    """Caller verification (PIN or date of birth) before sensitive intents."""

    required_for: tuple[str, ...] = ()
    prompt: str = (
        "For your security, please key in your PIN followed by the pound key, or tell me "
        "your date of birth."
    )
    retry: str = "Sorry, that didn't match. Please try once more."
    failed: str = (
        "I'm sorry, I couldn't verify your identity, so I can't make that change by phone."
    )
    verified: str = "Thank you, you're verified."
    max_attempts: int = 2


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
    greeting_known_caller: str = ""
    """The greeting when the caller's record is already known (may use ``{first_name}``)."""
    escalation: EscalationConfig = field(default_factory=EscalationConfig)
    verification: VerificationConfig = field(default_factory=VerificationConfig)

    def intent(self, name: str) -> Intent | None:
        """The intent called ``name``, if the agent has one."""
        return next((i for i in self.intents if i.name == name), None)

    def training_examples(self) -> list[tuple[str, str]]:
        """Every (phrasing, intent name) pair, knowledge-base questions included."""
        return [(example, intent.name) for intent in self.intents for example in intent.examples]

    def fixed_lines(self) -> list[str]:
        """Every line the agent says word for word (templates with slots give their fixed part)."""
        lines = [
            self.greeting,
            self.fallback,
            self.transfer.handoff_line,
            *self.repair,
            self.escalation.unavailable_line,
            self.transfer.failure_line,
            self.transfer.callback_offer,
            self.transfer.callback_confirmed,
        ]
        for intent in self.intents:
            lines.append(
                intent.response.split("{")[0] if "{" in intent.response else intent.response
            )
            lines.extend(slot.prompt for slot in intent.slots)
            lines.append(self.clarify.format(description=intent.description))
        return [line for line in lines if line.strip()]
