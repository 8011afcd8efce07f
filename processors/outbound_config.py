"""An agent file's ``outbound:`` section.

Why the agent calls, what it says first, what it leaves on a machine, and what each call
can come to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass

from integrations.outbound.dispositions import Disposition
from processors.caller_context import CALLER_FIELDS, placeholders, spoken_phone
from processors.definition_values import VALUE_CONFIG, Line, Text


class MissingVariablesError(ValueError):
    """A template needs values the call does not have; the message names them (never values)."""

    def __init__(self, what: str, missing: set[str]):
        """Name the template and the missing placeholders."""
        self.missing = frozenset(missing)
        super().__init__(f"{what} needs {', '.join(sorted(missing))} (not given for this call)")


@dataclass(frozen=True, config=VALUE_CONFIG)
class OutboundConfig:
    """What an agent needs to place calls: why it calls, what it says, what it records.

    Templates (``opening``, ``voicemail``) use ``{placeholders}``: a declared variable
    (given per contact: a campaign's CSV column or ``--var``), ``{callback_number}``, or a
    field of the callee's CRM record (``{first_name}``... see
    :mod:`processors.caller_context`). A contact's variables win over the CRM's fields.
    """

    purpose: Line
    """One line on why the agent calls (told to the LLM, shown to operators)."""
    variables: tuple[Text, ...] = ()
    """Names every contact must give (a campaign CSV's rows are checked against them)."""
    callback_number: Text = ""
    """The number the callee can call back (``{callback_number}`` in the templates, said
    digit by digit)."""
    opening: Line = ""
    """The first line of a call a person answered (default: the agent's ``greeting``)."""
    voicemail: Line = ""
    """The short message left after the beep when a machine answers ("": none left)."""
    outcomes: dict[Text, Disposition] = field(default_factory=dict)
    """Intent name -> the disposition recorded when the agent acts on it."""
    opt_out_intents: tuple[Text, ...] = ("opt_out",)
    """Intents that put the callee's number on the do-not-call list and end the call."""
    yes_intent: Text = ""
    """What a plain "yes" to the opening means (e.g. ``confirm_appointment``)."""
    no_reply: Line = ""
    """Said to a plain "no" to the opening (e.g. offer to move or cancel)."""
    no_speech_secs: Annotated[float, Field(gt=0, le=30)] = 2.0
    """The opening comes anyway when the callee has said nothing this long after answering."""

    @field_validator("opening", "voicemail")
    @classmethod
    def _known_placeholders(cls, template: str, info: ValidationInfo) -> str:
        try:
            names = placeholders(template)
        except ValueError as e:
            raise ValueError(f"bad template: {e} (write placeholders as {{name}})") from None
        known = {*info.data.get("variables", ()), "callback_number", *CALLER_FIELDS}
        unknown = names - known
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {', '.join('{' + n + '}' for n in sorted(unknown))} "
                "(declare them under outbound.variables, or use {callback_number} or a CRM "
                f"field: {', '.join(sorted(CALLER_FIELDS))})"
            )
        if "callback_number" in names and not info.data.get("callback_number"):
            raise ValueError("uses {callback_number}: set outbound.callback_number")
        return template

    def missing_variables(self, variables: Mapping[str, str]) -> list[str]:
        """The declared variables a contact did not give (or gave empty), in file order."""
        return [name for name in self.variables if not str(variables.get(name, "")).strip()]

    def render_opening(
        self, variables: Mapping[str, str], caller: Mapping[str, str] | None = None
    ) -> str:
        """The opening for one call.

        Args:
            variables: The contact's variables.
            caller: The callee's CRM fields (:func:`processors.caller_context.caller_fields`).

        Raises:
            MissingVariablesError: naming the placeholders neither gives.
        """
        return self._render("the opening", self.opening, variables, caller)

    def render_voicemail(
        self, variables: Mapping[str, str], caller: Mapping[str, str] | None = None
    ) -> str:
        """The voicemail message for one call ("" when the agent leaves none).

        Raises:
            MissingVariablesError: naming the placeholders neither gives.
        """
        return self._render("the voicemail", self.voicemail, variables, caller)

    def _render(
        self,
        what: str,
        template: str,
        variables: Mapping[str, str],
        caller: Mapping[str, str] | None,
    ) -> str:
        values = {
            **(caller or {}),
            **{k: v for k, v in variables.items() if str(v).strip()},
            "callback_number": spoken_phone(self.callback_number),
        }
        missing = placeholders(template) - {k for k, v in values.items() if v}
        if missing:
            raise MissingVariablesError(what, missing)
        return template.format_map(values)
