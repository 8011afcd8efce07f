"""Loads an agent definition: one YAML file describing what an agent says and knows.

An agent is data, not code. The file is validated straight into the pydantic types of
``processors/agent_definition.py``; every error names the file, the line, the field path
and the fix, e.g. ``agent.yaml:12: transfer.wisper: unknown key 'wisper' (allowed: ...)``.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from bot.yaml_schema import Loc, Problem, check, load_yaml, problems, yaml_problem
from processors.agent_definition import (
    VALUE_CONFIG,
    AgentDefinition,
    Intent,
    IntentAction,
    Line,
    Text,
)

_SECTIONS = ("nlu", "transfer", "escalation", "verification", "keypad", "knowledge_base", "repair")
"""Top-level keys where an empty value means the defaults."""


class AgentFileError(ValueError):
    """The agent file is malformed; the message names the file, line, key and fix."""


@dataclass(frozen=True, config=VALUE_CONFIG)
class KnowledgeEntry:
    """A short fact the agent answers directly; its questions train like an intent."""

    id: Text
    questions: tuple[Text, ...]
    answer: Line


@dataclass(frozen=True, config=VALUE_CONFIG)
class AgentFile(AgentDefinition):
    """The agent file: the definition, plus the knowledge base that becomes ``kb:`` intents."""

    knowledge_base: tuple[KnowledgeEntry, ...] = ()


_FILE = TypeAdapter(AgentFile)


def load_agent(path: Path) -> AgentDefinition:
    """Load and validate an agent file.

    Raises:
        AgentFileError: naming the file, the line, the key and the fix.
    """
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise AgentFileError(f"{path}: cannot read agent file: {e}") from e
    except yaml.YAMLError as e:
        raise _error(path, [yaml_problem(e)], "cannot read agent file: ") from e
    if not isinstance(data, dict):
        raise AgentFileError(f"{path}: the agent file must be a YAML mapping")
    if "source" in data:
        raise _error(path, check(data, [(("source",), "unknown key 'source' (remove it)")]))
    _fill_defaults(data)
    try:
        agent_file = _FILE.validate_python(data)
    except ValidationError as e:
        raise _error(path, problems(e, data, AgentFile, hidden=("source",))) from None
    agent = _definition(agent_file, data, path)
    found = check(data, _references(agent))
    if found:
        raise _error(path, found)
    return agent


def _fill_defaults(data: dict[str, Any]) -> None:
    """Defaults that depend on the rest of the file (the file is ours to change)."""
    for key in _SECTIONS:
        if key in data and not data[key]:
            del data[key]
    escalation = data.setdefault("escalation", {})
    if isinstance(escalation, dict) and "not_understood_limit" in data:
        escalation.setdefault("failed_turns", {"limit": data["not_understood_limit"]})


def _definition(agent_file: AgentFile, data: dict[str, Any], path: Path) -> AgentDefinition:
    """The definition the processors use: knowledge base as intents, the file's path."""
    kb = tuple(
        Intent(
            name=f"kb:{entry.id}",
            description=f"ask about {entry.id.replace('_', ' ')}",
            examples=entry.questions,
            response=entry.answer,
        )
        for entry in agent_file.knowledge_base
    )
    intents = agent_file.intents + kb
    escalation = agent_file.escalation
    given = data["escalation"].get("explicit_request")
    if not isinstance(given, dict) or "intents" not in given:
        default = escalation.explicit_request  # the default intent only where the agent has it
        names = {intent.name for intent in intents}
        kept = tuple(name for name in default.intents if name in names)
        escalation = replace(escalation, explicit_request=replace(default, intents=kept))
    values = {f.name: getattr(agent_file, f.name) for f in fields(AgentDefinition)}
    return AgentDefinition(
        **values | {"intents": intents, "escalation": escalation, "source": path}
    )


def _references(agent: AgentDefinition) -> list[tuple[Loc, str]]:
    """Names of intents (keypad, escalation, verification) the agent does not have."""
    names = {intent.name for intent in agent.intents}
    fix = f"(intents: {', '.join(sorted(names))})"
    found: list[tuple[Loc, str]] = [
        (("keypad", key), f"no intent named '{name}' {fix}")
        for key, name in agent.keypad.items()
        if name not in names
    ]
    lists: dict[Loc, tuple[str, ...]] = {
        ("escalation", "explicit_request", "intents"): agent.escalation.explicit_request.intents,
        ("escalation", "out_of_scope", "intents"): agent.escalation.out_of_scope.intents,
        ("verification", "required_for"): agent.verification.required_for,
        ("nlu", "confirm", "intents"): agent.nlu.confirm.intents or (),
    }
    for loc, listed in lists.items():
        found += [
            ((*loc, i), f"no intent named '{name}' {fix}")
            for i, name in enumerate(listed)
            if name not in names
        ]
    return found + _outbound_references(agent, names, fix)


def _outbound_references(
    agent: AgentDefinition, names: set[str], fix: str
) -> list[tuple[Loc, str]]:
    """The outbound section's intents: outcomes, opt-outs (which must end the call), yes/no."""
    outbound = agent.outbound
    if outbound is None:
        return []
    found: list[tuple[Loc, str]] = [
        (("outbound", "outcomes", name), f"no intent named '{name}' {fix}")
        for name in outbound.outcomes
        if name not in names
    ]
    for i, name in enumerate(outbound.opt_out_intents):
        intent = agent.intent(name)
        if intent is None:
            found.append(
                (
                    ("outbound", "opt_out_intents", i),
                    f"no intent named '{name}': an agent that calls people must let them opt "
                    f"out; add the intent or list yours here {fix}",
                )
            )
        elif intent.action is not IntentAction.END_CALL:
            found.append(
                (("intents", name, "action"), "an opt-out intent must end the call (end_call)")
            )
    if outbound.yes_intent and outbound.yes_intent not in names:
        found.append((("outbound", "yes_intent"), f"no intent named '{outbound.yes_intent}' {fix}"))
    for key, needed in (("yes_intent", "affirm"), ("no_reply", "deny")):
        if getattr(outbound, key) and needed not in names:
            found.append((("outbound", key), f"needs an intent named '{needed}' (add it)"))
    return found


def _error(path: Path, found: list[Problem], prefix: str = "") -> AgentFileError:
    lines = [f"{path}" + (f":{p.line}" if p.line else "") + f": {prefix}{p}" for p in found]
    return AgentFileError("\n".join(lines))
