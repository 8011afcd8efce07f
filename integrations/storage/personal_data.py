"""What a stored call record keeps of the caller's personal data.

One strategy per choice of ``CALLAGENT_CALLER_ID_STORAGE``, used by the call recorder for
everything it writes (and so by the spool, the dashboard, ``/api/calls`` and the exports,
which only read what was written):

- :class:`MaskPersonalData` (``hash`` and ``redact``): the caller id in its hashed or
  redacted form (:mod:`integrations.storage.caller_id`); in free text (turn transcripts,
  the escalation summary's transcript and entities) e-mail addresses, phone numbers, runs
  of four or more digits (spoken or written), dates and the caller's name (from the CRM
  record, or introduced: "my name is ...", "this is ...") are replaced by ``[email]``,
  ``[phone]``, ``[number]``, ``[date]`` and ``[name]``; the summary's CRM record keeps
  its ids, statuses and kinds, the phone in the caller-id form, and drops names, e-mail,
  appointment and case details.
- :class:`KeepPersonalData` (``plain``): everything as said and as the CRM gave it.

Either way keyed digits and PINs are never stored (the recorder and the summary drop them
first). What the words mean stays: intents, confidences, bands, latencies, outcomes.
Names the caller says without introducing themselves, and that the CRM does not know, are
not recognised (there is no named-entity model).
"""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

from integrations.storage.caller_id import CallerIdPolicy, PlainCallerId

EMAIL = "[email]"
PHONE = "[phone]"
NUMBER = "[number]"
DATE = "[date]"
NAME = "[name]"

PHONE_DIGITS = 7
"""A run of this many digits or more reads as a phone number; 4-6 as a number (a PIN...)."""

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_SPOKEN_EMAIL = re.compile(
    r"\b[a-z0-9_]+(?:\s+dot\s+[a-z0-9_]+)*\s+at\s+[a-z0-9_-]+(?:\s+dot\s+[a-z]{2,})+\b",
    re.IGNORECASE,
)
_ISO_DATE = re.compile(
    r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?"
)
_DIGIT_RUN = re.compile(r"\+?\d(?:[\s().\-]{0,2}\d){3,}")
_DIGIT_WORD = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)"
_SPOKEN_DIGITS = re.compile(rf"\b{_DIGIT_WORD}(?:[\s,\-]+{_DIGIT_WORD}){{3,}}\b", re.IGNORECASE)
_NOT_NAMES = (
    r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|January|February|March|"
    r"April|May|June|July|August|September|October|November|December|The|A|An|Not|Just|So|"
    r"Calling|Sorry|Very|Really|Still|Here|About)\b"
)
_INTRODUCTION = re.compile(
    r"\b((?i:my name is|my name's|name is|this is|i am|i'm)\s+)"
    rf"(?!{_NOT_NAMES})[A-Z][\w'\-]+(?:\s+(?!{_NOT_NAMES})[A-Z][\w'\-]+)?"
)

_SYSTEM_KEYS = frozenset(
    {
        "call_id",
        "transport",
        "reason",
        "reason_text",
        "reason_detail",
        "started_at",
        "escalated_at",
        "duration_s",
        "authentication",
        "intents",
        "sentiment",
    }
)
"""Summary fields the agent wrote itself (no caller data): stored as they are."""
_KEPT_CALLER_FIELDS = ("customer_id", "account_status", "authentication", "source")
_KEPT_ITEM_FIELDS = {
    "next_appointment": ("id", "status"),
    "recent_interactions": ("channel", "outcome"),
    "open_cases": ("id", "status"),
    "pending_actions": ("id", "kind"),
}
_WHOLE_VALUE_ENTITIES = {"phone": PHONE, "email": EMAIL}


class PersonalDataPolicy(ABC):
    """Turns what a call record would hold into what is stored."""

    name: str

    def __init__(self, caller_ids: CallerIdPolicy):
        """Store caller ids with ``caller_ids``."""
        self.caller_ids = caller_ids

    def caller_id(self, caller: str | None) -> str | None:
        """The stored form of the caller's identity."""
        return self.caller_ids.store(caller)

    @abstractmethod
    def caller_text(self, text: str | None, names: Iterable[str] = ()) -> str | None:
        """What the caller said, as stored (``names``: the caller's, known from the CRM)."""

    @abstractmethod
    def bot_text(self, text: str | None, names: Iterable[str] = ()) -> str | None:
        """What the bot said, as stored (it may read back the caller's name or data)."""

    @abstractmethod
    def entities(self, entities: Mapping[str, Any]) -> dict[str, Any]:
        """A turn's extracted entities, as stored."""

    @abstractmethod
    def summary(self, summary: Mapping[str, Any], names: Iterable[str] = ()) -> dict[str, Any]:
        """An escalation summary (as handed to a person), as stored."""


class KeepPersonalData(PersonalDataPolicy):
    """Everything as given (``plain``: only where the law and the callers allow it)."""

    name = "plain"

    def __init__(self, caller_ids: CallerIdPolicy | None = None):
        """Keep caller ids as given too, unless told otherwise."""
        super().__init__(caller_ids or PlainCallerId())

    def caller_text(self, text: str | None, names: Iterable[str] = ()) -> str | None:
        """The text unchanged."""
        return text

    def bot_text(self, text: str | None, names: Iterable[str] = ()) -> str | None:
        """The text unchanged."""
        return text

    def entities(self, entities: Mapping[str, Any]) -> dict[str, Any]:
        """The entities unchanged."""
        return dict(entities)

    def summary(self, summary: Mapping[str, Any], names: Iterable[str] = ()) -> dict[str, Any]:
        """The summary unchanged."""
        return dict(summary)


class MaskPersonalData(PersonalDataPolicy):
    """Personal data masked in text, dropped from the stored CRM record (``hash``, ``redact``)."""

    name = "mask"

    def caller_text(self, text: str | None, names: Iterable[str] = ()) -> str | None:
        """The caller's words with contact data, numbers, dates and names masked."""
        if not text:
            return text
        return self._mask(_INTRODUCTION.sub(lambda m: m.group(1) + NAME, text), names)

    def bot_text(self, text: str | None, names: Iterable[str] = ()) -> str | None:
        """The bot's words with contact data, numbers, dates and the caller's name masked."""
        return self._mask(text, names) if text else text

    def entities(self, entities: Mapping[str, Any]) -> dict[str, Any]:
        """Entities with phone and e-mail values replaced whole and digits by their length.

        Every other string value is masked as text.
        """
        out: dict[str, Any] = {}
        for kind, value in entities.items():
            if kind in _WHOLE_VALUE_ENTITIES:
                out[kind] = _WHOLE_VALUE_ENTITIES[kind]
            elif kind == "digits":
                out[kind] = "#" * len(re.sub(r"\D", "", str(value))) if value else value
            else:
                out[kind] = self._walk(value, ())
        return out

    def summary(self, summary: Mapping[str, Any], names: Iterable[str] = ()) -> dict[str, Any]:
        """The summary with its caller record reduced and its free text masked."""
        caller = summary.get("caller")
        known = [*names, *(_name_parts(caller.get("name")) if isinstance(caller, dict) else [])]
        out: dict[str, Any] = {}
        for key, value in summary.items():
            if key in _SYSTEM_KEYS:
                out[key] = value
            elif key == "caller":
                out[key] = self._caller_record(value) if isinstance(value, dict) else None
            elif key == "entities" and isinstance(value, dict):
                out[key] = self.entities(value)
            elif key == "transcript" and isinstance(value, list):
                out[key] = [self._transcript_line(line, known) for line in value]
            else:
                out[key] = self._walk(value, known)
        return out

    def _caller_record(self, caller: Mapping[str, Any]) -> dict[str, Any]:
        kept: dict[str, Any] = {k: caller.get(k) for k in _KEPT_CALLER_FIELDS if k in caller}
        kept["name"] = NAME if caller.get("name") else ""
        kept["phone"] = self.caller_id(str(caller.get("phone") or "")) or ""
        kept["email"] = EMAIL if caller.get("email") else ""
        for key, fields in _KEPT_ITEM_FIELDS.items():
            value = caller.get(key)
            if isinstance(value, dict):
                kept[key] = {f: value.get(f) for f in fields}
            elif isinstance(value, list):
                kept[key] = [
                    {f: item.get(f) for f in fields} for item in value if isinstance(item, dict)
                ]
            else:
                kept[key] = None if key == "next_appointment" else []
        return kept

    def _transcript_line(self, line: Any, names: list[str]) -> Any:
        if not isinstance(line, dict):
            return self._walk(line, names)
        text = line.get("text")
        masked = (
            self.caller_text(text, names)
            if line.get("role") == "caller"
            else self.bot_text(text, names)
        )
        return {**line, "text": masked}

    def _walk(self, value: Any, names: Iterable[str]) -> Any:
        if isinstance(value, str):
            return self._mask(value, names)
        if isinstance(value, dict):
            return {k: self._walk(v, names) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk(v, names) for v in value]
        return value

    def _mask(self, text: str, names: Iterable[str]) -> str:
        text = _EMAIL.sub(EMAIL, text)
        text = _SPOKEN_EMAIL.sub(EMAIL, text)
        text = _ISO_DATE.sub(DATE, text)
        text = _DIGIT_RUN.sub(_number_label, text)
        text = _SPOKEN_DIGITS.sub(NUMBER, text)
        pattern = _names_pattern(tuple(names))
        if pattern is not None:
            text = pattern.sub(NAME, text)
        return text


@functools.lru_cache(maxsize=256)
def _names_pattern(names: tuple[str, ...]) -> re.Pattern[str] | None:
    """The compiled pattern matching any part of these names (None: no parts), cached."""
    parts = sorted({p for n in names for p in _name_parts(n)}, key=len, reverse=True)
    if not parts:
        return None
    return re.compile(r"\b(?:" + "|".join(re.escape(p) for p in parts) + r")\b", re.IGNORECASE)


def personal_data_policy(caller_ids: CallerIdPolicy) -> PersonalDataPolicy:
    """The policy that goes with a caller-id policy: ``plain`` keeps, the others mask."""
    if isinstance(caller_ids, PlainCallerId):
        return KeepPersonalData(caller_ids)
    return MaskPersonalData(caller_ids)


def _name_parts(name: Any) -> list[str]:
    """The words of a name worth masking (initials are not)."""
    if not isinstance(name, str):
        return []
    return [p for p in re.split(r"[\s,]+", name.strip()) if len(p) >= 2]


def _number_label(match: re.Match[str]) -> str:
    digits = sum(c.isdigit() for c in match.group(0))
    return PHONE if digits >= PHONE_DIGITS else NUMBER
