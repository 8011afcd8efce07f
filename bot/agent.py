"""Loads an agent definition: one YAML file describing what an agent says and knows.

An agent is data, not code. This module validates the file into the typed model
of ``processors/agent_definition.py``; errors name the file, the key and the fix.
"""

from __future__ import annotations

import re
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml

from processors.agent_definition import (
    AgentDefinition,
    EscalationConfig,
    ExplicitRequestTrigger,
    FailedTurnsTrigger,
    Intent,
    IntentAction,
    MaxDurationTrigger,
    NLUConfig,
    OutOfScopeTrigger,
    SentimentTrigger,
    Slot,
    TransferConfig,
    VerificationConfig,
)

CRM_UPDATES = ("move_appointment", "cancel_appointment")
_TRIGGERS: dict[str, type] = {
    "explicit_request": ExplicitRequestTrigger,
    "failed_turns": FailedTurnsTrigger,
    "negative_sentiment": SentimentTrigger,
    "out_of_scope": OutOfScopeTrigger,
    "max_duration": MaxDurationTrigger,
}
T = TypeVar("T")


class AgentFileError(ValueError):
    """The agent file is malformed; the message names the key and the fix."""


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
    names = {intent.name for intent in intents}
    keypad = {str(key): str(name) for key, name in (data.get("keypad") or {}).items()}
    for key, name in keypad.items():
        if name not in names:
            raise ValueError(f"keypad '{key}': no intent named '{name}'")
    return AgentDefinition(
        name=str(data["name"]),
        persona=str(data.get("persona", "")).strip(),
        greeting=str(data["greeting"]).strip(),
        intents=tuple(intents),
        repair=tuple(str(r) for r in repair),
        fallback=str(data.get("fallback", "How can I help you?")).strip(),
        clarify=str(data.get("clarify", "Did you want to {description}?")),
        not_understood_limit=int(data.get("not_understood_limit", 3)),
        keypad=keypad,
        nlu=nlu,
        transfer=_section(TransferConfig, data.get("transfer"), "transfer"),
        source=path,
        greeting_known_caller=str(data.get("greeting_known_caller", "")).strip(),
        escalation=_escalation(data.get("escalation"), names, data),
        verification=_verification(data.get("verification"), names),
    )


def _section(cls: type[T], raw: Any, where: str) -> T:
    """Build a config dataclass from a mapping, naming unknown keys and bad values."""
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: must be a mapping of settings")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ValueError(f"{where}: unknown key '{key}' (known: {', '.join(known)})")
        default = getattr(cls(), key)
        try:
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise TypeError
                values[key] = value
            elif isinstance(default, int | float):
                values[key] = type(default)(value)
            elif isinstance(default, tuple):
                if isinstance(value, str) or not isinstance(value, list | tuple):
                    raise TypeError
                values[key] = tuple(str(v) for v in value)
            else:
                values[key] = str(value).strip()
        except (TypeError, ValueError):
            kind = type(default).__name__.replace("tuple", "list")
            raise ValueError(f"{where}.{key}: expected a {kind}") from None
    return cls(**values)


def _escalation(raw: Any, intents: set[str], data: dict[str, Any]) -> EscalationConfig:
    """Parse ``escalation``: each trigger is a mapping, or ``false`` to switch it off."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError("escalation: must be a mapping of triggers")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"escalation.{key}"
        if key == "unavailable_line":
            values[key] = str(value).strip()
            continue
        if key not in _TRIGGERS:
            raise ValueError(
                f"escalation: unknown key '{key}' (known: {', '.join(_TRIGGERS)}, unavailable_line)"
            )
        if value is False or value is True:
            value = {"enabled": value}
        values[key] = _section(_TRIGGERS[key], value, where)
    if "failed_turns" not in values:
        limit = int(data.get("not_understood_limit", FailedTurnsTrigger.limit))
        values["failed_turns"] = FailedTurnsTrigger(limit=limit)
    given = raw.get("explicit_request")
    if not isinstance(given, dict) or "intents" not in given:
        default = values.get("explicit_request", ExplicitRequestTrigger())
        values["explicit_request"] = replace(  # the default intent only where the agent has it
            default, intents=tuple(i for i in default.intents if i in intents)
        )
    config = EscalationConfig(**values)
    for key in ("explicit_request", "out_of_scope"):
        for name in getattr(config, key).intents:
            if name not in intents:
                raise ValueError(f"escalation.{key}.intents: no intent named '{name}'")
    for phrase in config.explicit_request.phrases:
        try:
            re.compile(phrase)
        except re.error as e:
            raise ValueError(f"escalation.explicit_request.phrases: bad pattern: {e}") from None
    if config.failed_turns.limit < 1:
        raise ValueError("escalation.failed_turns.limit: must be 1 or more")
    if not -1 <= config.negative_sentiment.threshold <= 1:
        raise ValueError("escalation.negative_sentiment.threshold: must be between -1 and 1")
    if config.max_duration.seconds <= 0:
        raise ValueError("escalation.max_duration.seconds: must be more than 0")
    return config


def _verification(raw: Any, intents: set[str]) -> VerificationConfig:
    config = _section(VerificationConfig, raw, "verification")
    for name in config.required_for:
        if name not in intents:
            raise ValueError(f"verification.required_for: no intent named '{name}'")
    if config.max_attempts < 1:
        raise ValueError("verification.max_attempts: must be 1 or more")
    return config


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
            known_from=str(slot.get("known_from", "")),
        )
        for slot_name, slot in (spec.get("slots") or {}).items()
    )
    response = str(spec.get("response", "")).strip()
    for slot in slots:
        if f"{{{slot.name}}}" not in response:
            raise ValueError(f"intent '{name}': response must use the slot as {{{slot.name}}}")
    crm_update = str(spec.get("crm_update", ""))
    if crm_update and crm_update not in CRM_UPDATES:
        raise ValueError(f"intent '{name}': crm_update must be one of {', '.join(CRM_UPDATES)}")
    return Intent(
        name=name,
        description=str(spec.get("description", name.replace("_", " "))),
        examples=tuple(str(e) for e in examples),
        response=response,
        action=action,
        slots=slots,
        response_known_caller=str(spec.get("response_known_caller", "")).strip(),
        crm_update=crm_update,
    )


def _required(mapping: dict[str, Any], key: str, where: str) -> Any:
    if key not in mapping:
        raise ValueError(f"{where}: missing '{key}'")
    return mapping[key]
