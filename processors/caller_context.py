"""What the dialogue may say about a known caller: template fields from their CRM record.

Templates in the agent file (``greeting_known_caller``, ``response_known_caller``) use
these names: ``{first_name}``, ``{last_name}``, ``{appointment}`` (the next appointment,
spoken: "Tuesday, November 24 at 3 PM"), ``{appointment_kind}``, ``{appointment_provider}``,
``{account_status}``, ``{open_cases}`` (how many). A template whose fields the record cannot
fill is not used (the plain one is).
"""

from __future__ import annotations

import re
import string
from datetime import datetime
from typing import Any

import phonenumbers

from integrations.crm.base import CallerRecord

CALLER_FIELDS = frozenset(
    {
        "first_name",
        "last_name",
        "account_status",
        "open_cases",
        "appointment",
        "appointment_kind",
        "appointment_provider",
    }
)
"""The record's fields a template may use (``appointment_id`` is for write-backs only)."""


def placeholders(template: str) -> set[str]:
    """The ``{names}`` a template uses.

    Raises:
        ValueError: the template's braces are malformed.
    """
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def caller_fields(record: CallerRecord | None, now: datetime | None = None) -> dict[str, str]:
    """The template fields the record can fill (missing ones are absent, never empty)."""
    if record is None:
        return {}
    values: dict[str, str] = {
        "first_name": record.first_name,
        "last_name": record.last_name,
        "account_status": record.account_status.replace("_", " "),
        "open_cases": str(len(record.open_cases)),
    }
    nxt = record.next_appointment(now)
    if nxt is not None:
        values["appointment"] = spoken_datetime(nxt.starts_at)
        values["appointment_kind"] = nxt.kind
        values["appointment_provider"] = nxt.provider
        values["appointment_id"] = nxt.id
    return {k: v for k, v in values.items() if v}


def spoken_datetime(at: datetime) -> str:
    """``Tuesday, November 24 at 3 PM`` (minutes when not on the hour)."""
    hour = at.hour % 12 or 12
    minutes = f":{at.minute:02d}" if at.minute else ""
    return f"{at:%A}, {at:%B} {at.day} at {hour}{minutes} {'AM' if at.hour < 12 else 'PM'}"


def spoken_phone(number: str) -> str:
    """A phone number as TTS should say it: its national digit groups, digit by digit.

    ``+15555550100`` -> ``5 5 5, 5 5 5, 0 1 0 0``; text that is not a number is kept.
    """
    try:
        parsed = phonenumbers.parse(number, None if number.strip().startswith("+") else "US")
    except phonenumbers.NumberParseException:
        return number
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    groups = re.findall(r"\d+", national)
    return ", ".join(" ".join(group) for group in groups) if groups else number


def render(template: str, values: dict[str, Any]) -> str | None:
    """``template`` filled from ``values``, or None when a field is missing."""
    if not template:
        return None
    try:
        names = placeholders(template)
    except ValueError:
        return None
    if not names <= set(values):
        return None
    return template.format(**{k: values[k] for k in names})


def context_note(record: CallerRecord, now: datetime | None = None) -> str:
    """A system message telling an LLM what the CRM knows (for the dialogue LLM only)."""
    fields = caller_fields(record, now)
    parts = [f"The caller is a known customer: {record.full_name or 'name unknown'}."]
    parts.append(f"Account status: {fields.get('account_status', 'unknown')}.")
    if "appointment" in fields:
        parts.append(
            f"Next appointment: {fields.get('appointment_kind', 'appointment')} on "
            f"{fields['appointment']}"
            + (
                f" with {fields['appointment_provider']}."
                if "appointment_provider" in fields
                else "."
            )
        )
    if record.open_cases:
        parts.append("Open cases: " + "; ".join(c.subject for c in record.open_cases) + ".")
    if record.pending_actions:
        parts.append(
            "Pending: " + "; ".join(p.note or p.kind for p in record.pending_actions) + "."
        )
    parts.append(f"Identity verification: {record.auth.status.value}.")
    parts.append("Do not ask for details you already know.")
    return " ".join(parts)
