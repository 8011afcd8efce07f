"""The agent definition: one YAML file describing what an agent says and knows.

An agent is data, not code. This module loads and validates the file into typed
objects; errors name the file, the key and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml


class AgentFileError(ValueError):
    """The agent file is malformed; the message names the key and the fix."""


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
    nlu: NLUConfig = field(default_factory=NLUConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    source: Path | None = None

    def intent(self, name: str) -> Intent | None:
        """The intent called ``name``, if the agent has one."""
        return next((i for i in self.intents if i.name == name), None)

    def training_examples(self) -> list[tuple[str, str]]:
        """Every (phrasing, intent name) pair, knowledge-base questions included."""
        return [(example, intent.name) for intent in self.intents for example in intent.examples]


def load_agent(path: Path) -> AgentDefinition:
    """Load and validate an agent file.

    Raises:
        AgentFileError: naming the file, the key and the fix.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise AgentFileError(f"{path}: cannot read agent file: {e}") from e
    if not isinstance(data, dict):
        raise AgentFileError(f"{path}: the agent file must be a YAML mapping")
    try:
        return _parse(data, path)
    except (KeyError, TypeError, ValueError) as e:
        raise AgentFileError(f"{path}: {e}") from e


def _parse(data: dict[str, Any], path: Path) -> AgentDefinition:
    for key in ("name", "greeting", "intents"):
        if key not in data:
            raise ValueError(f"missing required key '{key}'")
    intents = [_parse_intent(name, spec) for name, spec in dict(data["intents"]).items()]
    for entry in data.get("knowledge_base") or []:
        entry_id = _required(entry, "id", "knowledge_base entry")
        intents.append(
            Intent(
                name=f"kb:{entry_id}",
                description=f"ask about {str(entry_id).replace('_', ' ')}",
                examples=tuple(_required(entry, "questions", f"knowledge_base '{entry_id}'")),
                response=str(_required(entry, "answer", f"knowledge_base '{entry_id}'")).strip(),
            )
        )
    nlu = NLUConfig(**(data.get("nlu") or {}))
    if not 0 <= nlu.clarify_threshold <= nlu.act_threshold <= 1:
        raise ValueError("nlu: need 0 <= clarify_threshold <= act_threshold <= 1")
    repair = data.get("repair") or ["Sorry, could you say that again?"]
    return AgentDefinition(
        name=str(data["name"]),
        persona=str(data.get("persona", "")).strip(),
        greeting=str(data["greeting"]).strip(),
        intents=tuple(intents),
        repair=tuple(str(r) for r in repair),
        fallback=str(data.get("fallback", "How can I help you?")).strip(),
        clarify=str(data.get("clarify", "Did you want to {description}?")),
        not_understood_limit=int(data.get("not_understood_limit", 3)),
        nlu=nlu,
        transfer=TransferConfig(**(data.get("transfer") or {})),
        source=path,
    )


def _parse_intent(name: str, spec: dict[str, Any]) -> Intent:
    examples = _required(spec, "examples", f"intent '{name}'")
    if not isinstance(examples, list) or len(examples) < 2:
        raise ValueError(f"intent '{name}': 'examples' needs at least two phrasings")
    try:
        action = IntentAction(spec.get("action", "answer"))
    except ValueError:
        raise ValueError(
            f"intent '{name}': action must be one of {', '.join(a.value for a in IntentAction)}"
        ) from None
    slots = tuple(
        Slot(
            name=slot_name,
            entity=str(_required(slot, "entity", f"slot '{name}.{slot_name}'")),
            prompt=str(_required(slot, "prompt", f"slot '{name}.{slot_name}'")),
        )
        for slot_name, slot in (spec.get("slots") or {}).items()
    )
    response = str(spec.get("response", "")).strip()
    for slot in slots:
        if f"{{{slot.name}}}" not in response:
            raise ValueError(f"intent '{name}': response must use the slot as {{{slot.name}}}")
    return Intent(
        name=name,
        description=str(spec.get("description", name.replace("_", " "))),
        examples=tuple(str(e) for e in examples),
        response=response,
        action=action,
        slots=slots,
    )


def _required(mapping: dict[str, Any], key: str, where: str) -> Any:
    if key not in mapping:
        raise ValueError(f"{where}: missing '{key}'")
    return mapping[key]
