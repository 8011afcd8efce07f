"""Loads an agent definition: one YAML file describing what an agent says and knows.

An agent is data, not code. This module validates the file into the typed model
of ``processors/agent_definition.py``; errors name the file, the key and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from processors.agent_definition import (
    AgentDefinition,
    Intent,
    IntentAction,
    NLUConfig,
    Slot,
    TransferConfig,
)


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
