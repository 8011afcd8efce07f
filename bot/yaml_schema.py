"""YAML files checked by pydantic types, with errors that point into the file.

The loader keeps the line of every mapping, key and list item, so a pydantic error's
``loc`` (``("intents", 3, "examples")``) becomes a line and a field path a person can
follow (``intents.book_appointment.examples``; list items count from 1, as read).
Used by the agent file (``bot/agent.py``) and the simulator's scenario files.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, SequenceNode

Loc = tuple[str | int, ...]


class LinedDict(dict[Any, Any]):
    """A YAML mapping that knows its own line and the line of each key."""

    line: int | None = None
    key_lines: dict[Any, int]
    key_columns: dict[Any, int]


class LinedList(list[Any]):
    """A YAML list that knows its own line and the line of each item."""

    line: int | None = None
    item_lines: list[int]
    item_columns: list[int]


class Problem(NamedTuple):
    """One thing wrong with a file: where (line, field path) and what to do."""

    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        """``path: message`` (the file and line are the caller's to add)."""
        return f"{self.path}: {self.message}" if self.path else self.message


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, building :class:`LinedDict` and :class:`LinedList`."""


def _mapping(loader: _Loader, node: MappingNode) -> Iterable[LinedDict]:
    data = LinedDict()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    data.key_columns = {}
    yield data
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
        if key in data:
            raise yaml.constructor.ConstructorError(
                None, None, f"{key!r} is given twice", key_node.start_mark
            )
        data[key] = loader.construct_object(value_node, deep=True)  # type: ignore[no-untyped-call]
        data.key_lines[key] = key_node.start_mark.line + 1
        data.key_columns[key] = key_node.start_mark.column + 1


def _sequence(loader: _Loader, node: SequenceNode) -> Iterable[LinedList]:
    data = LinedList()
    data.line = node.start_mark.line + 1
    data.item_lines = [item.start_mark.line + 1 for item in node.value]
    data.item_columns = [item.start_mark.column + 1 for item in node.value]
    yield data
    data.extend(loader.construct_object(item, deep=True) for item in node.value)  # type: ignore[no-untyped-call]


_Loader.add_constructor("tag:yaml.org,2002:map", _mapping)  # type: ignore[arg-type]
_Loader.add_constructor("tag:yaml.org,2002:seq", _sequence)  # type: ignore[arg-type]


def load_yaml(text: str) -> Any:
    """Parse YAML text (safe tags only), keeping lines; duplicate keys are an error.

    Raises:
        yaml.YAMLError: the text is not YAML (``MarkedYAMLError`` carries the line).
    """
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def yaml_problem(error: yaml.YAMLError) -> Problem:
    """A YAML syntax error as a :class:`Problem` at its line and column."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        problem = " ".join(x for x in (error.context, error.problem) if x) or "invalid YAML"
        return Problem(
            mark.line + 1 if mark else None,
            mark.column + 1 if mark else None,
            "",
            f"invalid YAML: {problem}",
        )
    return Problem(None, None, "", f"invalid YAML: {error}")


def locate(data: Any, loc: Loc, message: str) -> Problem:
    """A :class:`Problem` at ``loc`` of ``data``: its line, column and field path.

    An index into a mapping is the n-th key (types that read ``{name: fields}`` mappings
    as lists of named items keep the file's order); the path then names the key.
    """
    line: int | None = getattr(data, "line", None)
    column: int | None = None
    path = ""
    node = data
    for part in loc:
        if isinstance(node, dict):
            keys = list(node)
            if isinstance(part, int) and part not in node and part < len(keys):
                key: Any = keys[part]
            else:
                key = next((k for k in keys if str(k) == str(part)), part)
            path += f".{key}" if path else str(key)
            if isinstance(node, LinedDict) and key in node.key_lines:
                line, column = node.key_lines[key], node.key_columns[key]
            node = node.get(key)
        elif isinstance(node, list) and isinstance(part, int):
            path += f"[{part + 1}]"
            lines: Sequence[int] = getattr(node, "item_lines", ())
            if isinstance(node, LinedList) and part < len(lines):
                line, column = lines[part], node.item_columns[part]
            node = node[part] if part < len(node) else None
        elif isinstance(part, int):
            path += f"[{part + 1}]"
            node = None
        else:
            path += f".{part}" if path else str(part)
            node = None
    return Problem(line, column, path, message)


def problems(
    error: ValidationError, data: Any, root: type, hidden: Sequence[str] = ()
) -> list[Problem]:
    """Every error pydantic found, located in the file and worded as a fix, in file order.

    Args:
        error: What pydantic raised validating ``data`` as ``root``.
        data: The loaded file (from :func:`load_yaml`).
        root: The type validated (names the allowed keys of an unknown key's mapping).
        hidden: Keys not offered as allowed (fields the loader fills, not the file).
    """
    out = []
    for e in error.errors(include_url=False):
        loc: Loc = tuple(e["loc"])
        last = loc[-1] if loc else ""
        kind = e["type"]
        if kind == "missing":
            where = locate(data, loc[:-1], "")
            out.append(where._replace(message=f"has no '{last}' (add it: it is required)"))
            continue
        if kind in ("extra_forbidden", "unexpected_keyword_argument"):
            keyed = len(loc) > 1 and isinstance(loc[-2], int) and _keyed(data, loc[:-2])
            skip = {*hidden, "name"} if keyed else set(hidden)  # a keyed item's name is its key
            allowed = [k for k in _allowed_keys(root, loc[:-1]) if k not in skip]
            message = f"unknown key '{last}' (allowed: {', '.join(allowed)})"
        else:
            message = _wording(e)
        out.append(locate(data, loc, message))
    return sorted(out, key=lambda p: (p.line is None, p.line or 0))


_WORDING: dict[str, str] = {
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "string_type": "must be text",
    "dict_type": "must be a mapping (key: value lines)",
    "model_type": "must be a mapping (key: value lines)",
    "model_attributes_type": "must be a mapping (key: value lines)",
    "dataclass_type": "must be a mapping (key: value lines)",
    "dataclass_exact_type": "must be a mapping (key: value lines)",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
}


def _wording(error: Any) -> str:
    kind = error["type"]
    if kind in _WORDING:
        return _WORDING[kind]
    if kind == "literal_error":
        return f"must be one of {error['ctx']['expected'].replace(' or ', ', ')}".replace("'", "")
    if kind == "enum":
        return f"must be one of {error['ctx']['expected'].replace(' or ', ', ')}".replace("'", "")
    if kind == "too_short":
        return f"needs at least {error['ctx']['min_length']} items"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return str(error["msg"]).replace("Input should be", "must be")
    return str(error["msg"]).removeprefix("Value error, ")


def _keyed(data: Any, loc: Loc) -> bool:
    """Whether ``loc`` is a ``{name: fields}`` mapping read as a list of named items."""
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, int) and part not in node:
            node = list(node.values())[part] if part < len(node) else None
        elif isinstance(node, dict):
            node = next((v for k, v in node.items() if str(k) == str(part)), None)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    return isinstance(node, dict)


def _allowed_keys(root: type, loc: Loc) -> list[str]:
    """The keys the mapping at ``loc`` may have, following the types from ``root``."""
    cls: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        hints = typing.get_type_hints(cls) if _record(cls) else {}
        if part not in hints:
            return []
        cls = _record_in(hints[part])
        if cls is None:
            return []
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return list(cls.model_fields)
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls) if f.init]
    return []


def _record(cls: Any) -> bool:
    return dataclasses.is_dataclass(cls) or (isinstance(cls, type) and issubclass(cls, BaseModel))


def _record_in(hint: Any) -> Any:
    """The dataclass or model a hint holds (``tuple[Intent, ...]`` -> ``Intent``)."""
    if _record(hint):
        return hint
    for arg in typing.get_args(hint):
        found = _record_in(arg)
        if found is not None:
            return found
    return None


def check(data: Any, checks: Iterable[tuple[Loc, str]]) -> list[Problem]:
    """Problems found after validation (cross-field rules), located in the file."""
    return [locate(data, loc, message) for loc, message in checks]
