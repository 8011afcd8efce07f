"""A campaign's rules: who calls, when, how fast, how often again, and where results go.

Stored as JSON in ``campaigns.rules`` (the agent in its own column). Every check names
the field at fault, so the CLI and the API can point at the flag or parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from integrations.crm.base import normalize_phone
from integrations.outbound.retries import RetryPolicy, RetryRuleError
from integrations.outbound.windows import CallingWindows, WindowError, check_zone

DEFAULT_WINDOWS: Mapping[str, tuple[str, ...]] = {"mon-fri": ("09:00-19:00",)}
MAX_CONCURRENT = 1000
MAX_CPS = 100.0


class RulesError(ValueError):
    """A campaign rule that is wrong; ``field`` names it (``windows``, ``max_concurrent``...)."""

    def __init__(self, field_name: str, message: str):
        """``field_name``: the rule at fault; ``message``: what is wrong and how to fix it."""
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.reason = message


@dataclass(frozen=True)
class CampaignRules:
    """How a campaign calls.

    Parameters:
        agent: The agent key (its file's stem, e.g. ``appointment_reminders``).
        windows: Weekday spans in the callee's local time (``{"mon-fri": ["09:00-19:00"]}``).
        timezone: The zone of callees whose row and number give none.
        holidays: Public holidays skipped: ISO country, optionally ``/`` and subdivision
            (``US``, ``US/CA``); "" none.
        max_concurrent: Calls of this campaign in progress at once, at most.
        calls_per_second: Dials started per second, at most.
        retries: Which dispositions are dialled again, how often, after how long.
        from_number: The caller id (E.164); "" = the server's Twilio number.
        result_webhook_url: Each contact's final result is POSTed here (signed); "" none.
    """

    agent: str
    windows: Mapping[str, Sequence[str]] = field(default_factory=lambda: dict(DEFAULT_WINDOWS))
    timezone: str = "UTC"
    holidays: str = ""
    max_concurrent: int = 5
    calls_per_second: float = 1.0
    retries: RetryPolicy = field(default_factory=RetryPolicy.default)
    from_number: str = ""
    result_webhook_url: str = ""

    def __post_init__(self) -> None:
        """Check every rule (raises :class:`RulesError` naming the first one at fault)."""
        if not self.agent.strip():
            raise RulesError(
                "agent", "name the agent (its file's stem, e.g. appointment_reminders)"
            )
        try:
            check_zone(self.timezone)
        except WindowError as e:
            raise RulesError("timezone", str(e)) from None
        try:
            _ = self.calling_windows
        except WindowError as e:
            which = "holidays" if str(e).startswith("holidays") else "windows"
            raise RulesError(which, str(e)) from None
        if not 1 <= self.max_concurrent <= MAX_CONCURRENT:
            raise RulesError("max_concurrent", f"1 to {MAX_CONCURRENT} calls")
        if not 0 < self.calls_per_second <= MAX_CPS:
            raise RulesError("calls_per_second", f"above 0 and at most {MAX_CPS:g}")
        if self.from_number and normalize_phone(self.from_number) != self.from_number:
            raise RulesError("from_number", "give the caller id in E.164 (e.g. +15555550100)")
        url = urlsplit(self.result_webhook_url)
        if self.result_webhook_url and (url.scheme not in ("http", "https") or not url.netloc):
            raise RulesError("result_webhook_url", "an http(s):// URL")

    @cached_property
    def calling_windows(self) -> CallingWindows:
        """The windows with their holiday calendar."""
        country, _, subdivision = self.holidays.replace("-", "/").partition("/")
        return CallingWindows.parse(self.windows, country.strip(), subdivision.strip())

    def as_json(self) -> dict[str, Any]:
        """For ``campaigns.rules`` (the agent is its own column) and the API."""
        return {
            "windows": {days: list(spans) for days, spans in self.windows.items()},
            "timezone": self.timezone,
            "holidays": self.holidays,
            "max_concurrent": self.max_concurrent,
            "calls_per_second": self.calls_per_second,
            "retries": self.retries.as_json(),
            "from_number": self.from_number,
            "result_webhook_url": self.result_webhook_url,
        }

    @classmethod
    def from_json(cls, agent: str, data: Mapping[str, Any]) -> CampaignRules:
        """From :meth:`as_json` or an API request (missing rules take their defaults).

        Raises:
            RulesError: A rule of the wrong type or value, or an unknown one.
        """
        known = set(cls.__dataclass_fields__) - {"agent"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RulesError(unknown[0], f"unknown rule (known: {', '.join(sorted(known))})")
        values: dict[str, Any] = {"agent": agent}
        for name in ("timezone", "holidays", "from_number", "result_webhook_url"):
            if name in data:
                values[name] = _typed(name, data[name], str)
        if "max_concurrent" in data:
            values["max_concurrent"] = _typed("max_concurrent", data["max_concurrent"], int)
        if "calls_per_second" in data:
            cps = data["calls_per_second"]
            values["calls_per_second"] = float(_typed("calls_per_second", cps, (int, float)))
        if "windows" in data:
            values["windows"] = _windows(data["windows"])
        if "retries" in data:
            retries = data["retries"]
            try:
                values["retries"] = (
                    RetryPolicy.parse(list(retries))
                    if isinstance(retries, list)
                    else RetryPolicy.from_json(_typed("retries", retries, dict))
                )
            except RetryRuleError as e:
                raise RulesError("retries", str(e)) from None
        return cls(**values)


def _typed(name: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise RulesError(name, f"expected {names}")
    return value


def _windows(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, Mapping) or not value:
        raise RulesError("windows", 'an object like {"mon-fri": ["09:00-19:00"]}')
    windows: dict[str, list[str]] = {}
    for days, spans in value.items():
        listed = [spans] if isinstance(spans, str) else spans
        if not isinstance(days, str) or not isinstance(listed, list):
            raise RulesError("windows", 'an object like {"mon-fri": ["09:00-19:00"]}')
        if not all(isinstance(s, str) for s in listed):
            raise RulesError("windows", "spans are text like 09:00-19:00")
        windows[days] = list(listed)
    return windows
