"""Retry rules: which dispositions a campaign dials again, how often and after how long.

The defaults: no answer is retried twice after 30 minutes, busy three times after 10
minutes, a voicemail left once after 4 hours, a failed dial twice after 10 minutes but
only when the provider's error was a retryable one (a network error, a 5xx, Twilio's
rate limits; never an invalid number). Every other disposition is final.

Retries are counted over the contact's attempts: ``no-answer=2x30m`` means a no-answer
on the first or second attempt is dialled again 30 minutes later, and one on the third
is final (whatever the earlier attempts came to).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from integrations.outbound.dispositions import Disposition

_RULE = re.compile(r"^([a-z-]+)=(\d+)x(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_RETRIES = 20


class RetryRuleError(ValueError):
    """A retry rule that cannot be understood (the message says which and how to write it)."""


@dataclass(frozen=True)
class RetryRule:
    """Dial again up to ``times`` times, ``delay`` after the attempt ended."""

    times: int
    delay: timedelta

    def text(self, disposition: str) -> str:
        """As written on the command line: ``no-answer=2x30m``."""
        secs = int(self.delay.total_seconds())
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if secs and secs % size == 0:
                return f"{disposition}={self.times}x{secs // size}{unit}"
        return f"{disposition}={self.times}x{secs}s"


@dataclass(frozen=True)
class Decision:
    """What happens after an attempt: dial again after ``delay``, or the result is final."""

    final: bool
    delay: timedelta = timedelta(0)


FINAL = Decision(final=True)
DEFAULT_RULES: Mapping[str, RetryRule] = {
    Disposition.NO_ANSWER: RetryRule(2, timedelta(minutes=30)),
    Disposition.BUSY: RetryRule(3, timedelta(minutes=10)),
    Disposition.VOICEMAIL_LEFT: RetryRule(1, timedelta(hours=4)),
    Disposition.FAILED: RetryRule(2, timedelta(minutes=10)),
}
ONLY_IF_RETRYABLE = frozenset({Disposition.FAILED.value})
"""Dispositions retried only when the provider said the error was retryable."""


@dataclass(frozen=True)
class RetryPolicy:
    """A campaign's retry rules, disposition -> :class:`RetryRule`."""

    rules: Mapping[str, RetryRule]

    @classmethod
    def default(cls) -> RetryPolicy:
        """The rules described at the top of this module."""
        return cls(dict(DEFAULT_RULES))

    @classmethod
    def parse(cls, texts: list[str], base: RetryPolicy | None = None) -> RetryPolicy:
        """``["no-answer=2x30m", "busy=0x0m"]`` over ``base`` (the defaults); ``0x`` = never.

        Raises:
            RetryRuleError: A rule that is not ``<disposition>=<times>x<delay><s|m|h|d>``.
        """
        rules = dict((base or cls.default()).rules)
        for text in texts:
            match = _RULE.match(text.strip().lower())
            if match is None:
                raise RetryRuleError(
                    f"{text!r}: write a rule as <disposition>=<times>x<delay>, e.g. "
                    "no-answer=2x30m (s, m, h or d)"
                )
            name, times, amount, unit = match[1], int(match[2]), int(match[3]), match[4]
            rules[_disposition(name)] = _rule(name, times, amount * _UNITS[unit])
        return cls(rules)

    def decide(self, disposition: str, attempts_so_far: int, retryable: bool) -> Decision:
        """After attempt number ``attempts_so_far`` ended with ``disposition``: again, or final."""
        rule = self.rules.get(disposition)
        if rule is None or attempts_so_far > rule.times:
            return FINAL
        if disposition in ONLY_IF_RETRYABLE and not retryable:
            return FINAL
        return Decision(final=False, delay=rule.delay)

    def as_json(self) -> dict[str, dict[str, int]]:
        """For the campaign's stored rules."""
        return {
            name: {"times": r.times, "delay_secs": int(r.delay.total_seconds())}
            for name, r in self.rules.items()
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RetryPolicy:
        """From :meth:`as_json` (or an API request's ``retries`` object).

        Raises:
            RetryRuleError: An unknown disposition or a bad count or delay.
        """
        rules: dict[str, RetryRule] = {}
        for name, rule in data.items():
            if not isinstance(rule, Mapping):
                raise RetryRuleError(f"retries.{name}: give {{times, delay_secs}}")
            times, delay = rule.get("times"), rule.get("delay_secs")
            if not isinstance(times, int) or not isinstance(delay, int):
                raise RetryRuleError(f"retries.{name}: times and delay_secs are whole numbers")
            rules[_disposition(name)] = _rule(name, times, delay)
        return cls(rules)

    def texts(self) -> list[str]:
        """The rules as command-line text."""
        return [rule.text(name) for name, rule in self.rules.items()]


def _disposition(name: str) -> str:
    try:
        return Disposition(name).value
    except ValueError:
        known = ", ".join(d.value for d in Disposition)
        raise RetryRuleError(f"{name!r} is not a disposition ({known})") from None


def _rule(name: str, times: int, delay_secs: int) -> RetryRule:
    if not 0 <= times <= MAX_RETRIES:
        raise RetryRuleError(f"{name}: retry 0 to {MAX_RETRIES} times")
    if not 0 <= delay_secs <= 30 * 86400:
        raise RetryRuleError(f"{name}: the delay is 0 to 30 days")
    return RetryRule(times, timedelta(seconds=delay_secs))
