"""The agent definition model: persona, greeting, intents, knowledge base and policies.

These are the typed objects the dialogue and escalation processors are configured
with. They are pydantic dataclasses: each checks its own values (ranges, patterns,
slot placeholders) and rejects unknown keys, so ``bot/agent.py`` validates an agent
YAML file straight into them.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from dataclasses import field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BeforeValidator,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from processors.definition_values import VALUE_CONFIG, Line, Text, switch
from processors.nlu_config import NLUConfig
from processors.outbound_config import OutboundConfig


def _named(value: Any) -> Any:
    """An agent file's ``{name: fields}`` mapping as a list of named items, in file order."""
    if isinstance(value, dict):
        return [
            {**spec, "name": name} if isinstance(spec, dict) else spec
            for name, spec in value.items()
        ]
    return value


def _intents(value: Any) -> Any:
    """Intents keyed by name; the description defaults to the name in words."""
    if isinstance(value, dict):
        value = {
            name: {"description": str(name).replace("_", " "), **spec}
            if isinstance(spec, dict)
            else spec
            for name, spec in value.items()
        }
    return _named(value)


class IntentAction(StrEnum):
    """What the dialogue does after answering an intent."""

    ANSWER = "answer"
    TRANSFER = "transfer"
    END_CALL = "end_call"


@dataclass(frozen=True, config=VALUE_CONFIG)
class Slot:
    """A value an intent needs before it can be answered.

    Parameters:
        name: The placeholder used in the response template.
        entity: The NLU entity kind that fills it (e.g. ``datetime``).
        prompt: What the agent asks when the value is missing.
    """

    name: Text
    entity: Text
    prompt: Text
    known_from: Text = ""
    """A caller-record field that fills the slot without asking (e.g. ``appointment``)."""


@dataclass(frozen=True, config=VALUE_CONFIG)
class Intent:
    """Something callers ask for, with example phrasings and the agent's answer."""

    name: Text
    description: Text
    examples: tuple[Text, ...]
    response: Line = ""
    action: IntentAction = IntentAction.ANSWER
    slots: Annotated[tuple[Slot, ...], BeforeValidator(_named)] = ()
    response_known_caller: Line = ""
    """The answer when the caller's CRM record is known (may use ``{first_name}``...)."""
    crm_update: Literal["", "move_appointment", "cancel_appointment", "confirm_appointment"] = ""
    """A CRM write-back after answering: ``move_appointment``, ``cancel_appointment`` or
    ``confirm_appointment``."""

    @property
    def only_answers(self) -> bool:
        """The agent only answers it: nothing written to the CRM, no slot asked, no transfer."""
        return self.action is IntentAction.ANSWER and not self.crm_update and not self.slots

    @field_validator("examples")
    @classmethod
    def _two_phrasings(cls, examples: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        """An intent needs two phrasings to train on (a knowledge-base answer may have one)."""
        if len(examples) < 2 and not str(info.data.get("name", "")).startswith("kb:"):
            raise ValueError("needs at least two phrasings (add another example)")
        return examples

    @model_validator(mode="after")
    def _slots_in_response(self) -> Self:
        for slot in self.slots:
            if f"{{{slot.name}}}" not in self.response:
                raise ValueError(f"response must use the slot as {{{slot.name}}}")
        return self


@dataclass(frozen=True, config=VALUE_CONFIG)
class TransferConfig:
    """Where and how a call is handed to a human.

    ``target`` is a phone number (``+1555...``), a SIP URI (``sip:desk@pbx.example.com``)
    or a Twilio queue (``queue:front-desk``).
    """

    target: Line = ""
    handoff_line: Line = "Let me put you through to one of our team. Please hold."
    hold_line: Line = "Please hold while I connect you."
    whisper: StrictBool = True
    """Read the summary to the person answering before connecting the caller."""
    dial_timeout_secs: int = 25
    max_hold_secs: float = 120.0
    failure_line: Line = "I'm sorry, I couldn't reach anyone on our team right now."
    callback_offer: Line = "Would you like us to call you back as soon as someone is free?"
    callback_confirmed: Line = "Okay, someone from our team will call you back shortly."
    callback_declined: Line = "No problem. Is there anything else I can help you with?"


@dataclass(frozen=True, config=VALUE_CONFIG)
class WhenFullConfig:
    """What a phone caller gets when the server takes no more calls (full or shutting down).

    ``reject`` answers Twilio ``<Reject reason="busy"/>`` (the caller hears a busy tone and
    the call costs nothing); ``queue`` says ``line`` and sends the caller to the human queue
    (``transfer.target``, as an escalation's transfer does).
    """

    action: Literal["reject", "queue"] = "reject"
    line: Line = "All our lines are busy right now. Please hold for the next person on our team."


@dataclass(frozen=True, config=VALUE_CONFIG)
class WhenStoppingConfig:
    """What happens to a call still running when the server's drain time is up (a deploy).

    ``transfer`` hands it to a person as an escalation does (``transfer.handoff_line``,
    then ``transfer.target``) where the call's transport can transfer, else ends it as
    ``goodbye`` does: says ``line`` and hangs up.
    """

    action: Literal["transfer", "goodbye"] = "transfer"
    line: Line = (
        "I'm sorry, I have to end our call now. Please call us back and we'll carry on. Goodbye."
    )


@dataclass(frozen=True, config=VALUE_CONFIG)
class ExplicitRequestTrigger:
    """The caller asks for a person (intent, phrasing, or the keypad's 0)."""

    enabled: StrictBool = True
    intents: tuple[Text, ...] = ("talk_to_human",)
    phrases: tuple[Text, ...] = ()
    """Extra regular expressions that count as asking for a person."""

    @field_validator("phrases")
    @classmethod
    def _patterns(cls, phrases: tuple[str, ...]) -> tuple[str, ...]:
        for phrase in phrases:
            try:
                re.compile(phrase)
            except re.error as e:
                raise ValueError(f"bad pattern: {e} (write a Python regular expression)") from None
        return phrases


@dataclass(frozen=True, config=VALUE_CONFIG)
class FailedTurnsTrigger:
    """N turns in a row that were not understood (repair band)."""

    enabled: StrictBool = True
    limit: Annotated[int, Field(ge=1)] = 3


@dataclass(frozen=True, config=VALUE_CONFIG)
class SentimentTrigger:
    """A caller turn more negative than its bar (VADER compound, -1..1).

    Parameters:
        enabled: Whether the trigger fires at all.
        threshold: The bar for a turn the agent could not place (repaired, or out of scope).
        understood_threshold: The bar for a request the agent acts on or asks about (an
            intent of its own). Callers describe their trouble in the request itself ("I
            need to drop my appointment for tomorrow, I'm sick." reads -0.66); with one bar
            for every turn, ``callagent bench understanding`` (clean, 6 Dec 2026) saw 2 of
            262 dev calls (that cancellation, in two voices) and 2 of 200 held-out calls
            (price questions, "filled" heard as "fail" and "yours" as "fear") handed to a
            person on a request the agent was serving. Frustration with the call itself
            reads lower ("this is ridiculous, you people are useless and I am furious":
            -0.84).
    """

    enabled: StrictBool = True
    threshold: Annotated[float, Field(ge=-1, le=1)] = -0.53
    understood_threshold: Annotated[float, Field(ge=-1, le=1)] = -0.75

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.understood_threshold > self.threshold:
            raise ValueError(
                "understood_threshold must be at or below threshold (an understood request"
                " needs at least as much negativity to be handed off)"
            )
        return self


@dataclass(frozen=True, config=VALUE_CONFIG)
class OutOfScopeTrigger:
    """Intents the agent must not handle on its own (e.g. emergencies)."""

    enabled: StrictBool = True
    intents: tuple[Text, ...] = ()


@dataclass(frozen=True, config=VALUE_CONFIG)
class MaxDurationTrigger:
    """The call has run longer than the agent may handle it alone."""

    enabled: StrictBool = True
    seconds: Annotated[float, Field(gt=0)] = 600.0


@dataclass(frozen=True, config=VALUE_CONFIG)
class EscalationConfig:
    """When the agent hands a call to a person. Each trigger can be switched off."""

    explicit_request: Annotated[ExplicitRequestTrigger, BeforeValidator(switch)] = field(
        default_factory=ExplicitRequestTrigger
    )
    failed_turns: Annotated[FailedTurnsTrigger, BeforeValidator(switch)] = field(
        default_factory=FailedTurnsTrigger
    )
    negative_sentiment: Annotated[SentimentTrigger, BeforeValidator(switch)] = field(
        default_factory=SentimentTrigger
    )
    out_of_scope: Annotated[OutOfScopeTrigger, BeforeValidator(switch)] = field(
        default_factory=OutOfScopeTrigger
    )
    max_duration: Annotated[MaxDurationTrigger, BeforeValidator(switch)] = field(
        default_factory=MaxDurationTrigger
    )
    unavailable_line: Line = (
        "I'm sorry, I can't transfer you right now, but I'm happy to help. What do you need?"
    )
    """Said instead of the hand-off line when the request cannot lead to a transfer."""

    @property
    def hand_off_intents(self) -> frozenset[str]:
        """Intents the agent hands to a person when asked (the switched-on triggers')."""
        asked = self.explicit_request.intents if self.explicit_request.enabled else ()
        never_alone = self.out_of_scope.intents if self.out_of_scope.enabled else ()
        return frozenset((*asked, *never_alone))


@dataclass(frozen=True, config=VALUE_CONFIG)
class VerificationConfig:
    """Caller verification (PIN or date of birth) before sensitive intents."""

    required_for: tuple[Text, ...] = ()
    prompt: Line = (
        "For your security, please key in your PIN followed by the pound key, or tell me "
        "your date of birth."
    )
    retry: Line = "Sorry, that didn't match. Please try once more."
    failed: Line = (
        "I'm sorry, I couldn't verify your identity, so I can't make that change by phone."
    )
    verified: Line = "Thank you, you're verified."
    max_attempts: Annotated[int, Field(ge=1)] = 2


@dataclass(frozen=True, config=VALUE_CONFIG)
class AgentDefinition:
    """A whole agent: persona, greeting, intents, knowledge base and policies."""

    name: Text
    greeting: Line
    intents: Annotated[tuple[Intent, ...], BeforeValidator(_intents)]
    persona: Line = ""
    repair: tuple[Text, ...] = ("Sorry, could you say that again?",)
    fallback: Line = "How can I help you?"
    clarify: Text = "Did you want to {description}?"
    clarify_either: Text = "Did you want to {first}, or {second}?"
    """The clarifying question that offers two intents (their descriptions)."""
    not_understood_limit: int = 3
    keypad: dict[Text, Text] = field(default_factory=dict)
    nlu: NLUConfig = field(default_factory=NLUConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    source: Path | None = None
    greeting_known_caller: Line = ""
    """The greeting when the caller's record is already known (may use ``{first_name}``)."""
    escalation: EscalationConfig = field(default_factory=EscalationConfig)
    verification: VerificationConfig = field(default_factory=VerificationConfig)
    out_of_scope_reply: Line = ""
    """The honest answer to a clearly heard request the agent does not handle (default:
    "I'm sorry, I can't help with that here." and the ``fallback``)."""
    keypad_offer: Line = ""
    """Said after a repair in a noisy call (default: made from the ``keypad`` map)."""
    outbound: OutboundConfig | None = None
    """What the agent needs to place calls (None: it only answers)."""
    when_full: WhenFullConfig = field(default_factory=WhenFullConfig)
    """A phone call past the server's cap (``CALLAGENT_MAX_CALLS``) or while it drains."""
    when_stopping: WhenStoppingConfig = field(default_factory=WhenStoppingConfig)
    """A call outliving the server's drain (``CALLAGENT_DRAIN_SECS``)."""

    @field_validator("clarify_either")
    @classmethod
    def _either_names_both(cls, line: str) -> str:
        fields = {name for _, name, _, _ in string.Formatter().parse(line) if name is not None}
        if fields != {"first", "second"}:
            raise ValueError("use {first} and {second} (the two intents' descriptions), no other")
        return line

    @field_validator("when_full")
    @classmethod
    def _queue_needs_a_target(cls, when_full: WhenFullConfig, info: ValidationInfo) -> Any:
        transfer = info.data.get("transfer")
        if when_full.action == "queue" and not getattr(transfer, "target", ""):
            raise ValueError("action queue sends callers to transfer.target: set it, or use reject")
        return when_full

    def intent(self, name: str) -> Intent | None:
        """The intent called ``name``, if the agent has one."""
        return next((i for i in self.intents if i.name == name), None)

    def clarify_line(self, offered: Sequence[Intent]) -> str:
        """The clarifying question offering ``offered`` (one or two of its intents)."""
        if len(offered) >= 2:
            return self.clarify_either.format(
                first=offered[0].description, second=offered[1].description
            )
        return self.clarify.format(description=offered[0].description)

    def irreversible_intents(self) -> frozenset[str]:
        """Intents acted on only when sure (``nlu.confirm.intents``, or the default set)."""
        if not self.nlu.confirm.enabled:
            return frozenset()
        listed = self.nlu.confirm.intents
        if listed is not None:
            return frozenset(listed)
        return self._not_escalated(lambda intent: not intent.only_answers)

    def answer_only_intents(self) -> frozenset[str]:
        """Intents the agent only answers: nothing written, asked for, handed on or ended."""
        return self._not_escalated(lambda intent: intent.only_answers)

    def _not_escalated(self, chosen: Callable[[Intent], bool]) -> frozenset[str]:
        """The names of the intents ``chosen`` picks, but for the escalation's out-of-scope ones."""
        escalated = set(self.escalation.out_of_scope.intents)
        return frozenset(i.name for i in self.intents if i.name not in escalated and chosen(i))

    def declined_line(self) -> str:
        """What the agent says to a request it does not handle."""
        return self.out_of_scope_reply or f"I'm sorry, I can't help with that here. {self.fallback}"

    def keypad_line(self) -> str:
        """The keypad offer after repairs in noise ("" when the agent has no keypad)."""
        if self.keypad_offer or not self.keypad:
            return self.keypad_offer
        choices = [
            f"{key} to {intent.description}"
            for key, name in self.keypad.items()
            if (intent := self.intent(name)) is not None
        ]
        if not choices:
            return ""
        listed = ", ".join(choices[:-1]) + (" or " if len(choices) > 1 else "") + choices[-1]
        return f"You can also use your keypad: press {listed}."

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
            self.declined_line(),
            self.keypad_line(),
            self.when_stopping.line,
        ]
        for intent in self.intents:
            lines.append(
                intent.response.split("{")[0] if "{" in intent.response else intent.response
            )
            lines.extend(slot.prompt for slot in intent.slots)
            lines.append(self.clarify.format(description=intent.description))
        return [line for line in lines if line.strip()]
