"""The values a scenario file is written with, and their checks (shared by the file's fields).

Each check raises ``ValueError`` with the fix; pydantic reports it with the field's path
(see :mod:`simulator.scenarios.scenario_file`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator


def text(value: Any) -> str:
    """Text as written: a string or a number, stripped, not empty."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be text")
    text = str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def text_or_empty(value: Any) -> str:
    """Text as written, or empty."""
    return "" if isinstance(value, str) and not value.strip() else text(value)


def listed(value: Any) -> Any:
    """One item or a list of them."""
    return value if isinstance(value, list | tuple) else [value]


def lower(words: tuple[str, ...]) -> tuple[str, ...]:
    """The words in lower case."""
    return tuple(w.lower() for w in words)


def between(low: float, high: float) -> BeforeValidator:
    """A number from ``low`` to ``high`` (both included)."""

    def check_number(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number")
        if not low <= float(value) <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        return float(value)

    return BeforeValidator(check_number)


def word_groups(value: Any) -> tuple[tuple[str, ...], ...]:
    """``[monday, [saturday, sunday]]``: each group, one of its words must be in the reply."""
    groups = []
    for item in listed(value):
        words = [text(w) for w in item] if isinstance(item, list) else [text(item)]
        if not words:
            raise ValueError("an empty group")
        groups.append(lower(tuple(words)))
    return tuple(groups)


Text = Annotated[str, BeforeValidator(text)]
Texts = Annotated[tuple[Text, ...], BeforeValidator(listed)]
Words = Annotated[tuple[Text, ...], BeforeValidator(listed), AfterValidator(lower)]
