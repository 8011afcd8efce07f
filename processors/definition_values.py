"""The value types of definition files (agent files): text as written, lines as spoken.

Shared by :mod:`processors.agent_definition`, :mod:`processors.nlu_config` and
:mod:`processors.outbound_config`.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, StringConstraints

VALUE_CONFIG = ConfigDict(extra="forbid")
"""Values read from a file: unknown keys are errors."""


def scalar_text(value: Any) -> Any:
    """A YAML scalar as the text it was written as (``yes`` reads as true: ``"True"``)."""
    return str(value) if isinstance(value, bool | int | float | date) else value


Text = Annotated[str, BeforeValidator(scalar_text)]
"""Text; other YAML scalars (numbers, yes/no, dates) as ``str()`` gives them."""
Line = Annotated[Text, StringConstraints(strip_whitespace=True)]
"""Text the agent says, trimmed (YAML folded blocks may end in a newline)."""


def switch(value: Any) -> Any:
    """A switchable section (a trigger, confirmations): a mapping, true/false or empty."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"enabled": value}
    return value
