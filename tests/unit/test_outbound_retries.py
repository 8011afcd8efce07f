"""Retry rules per disposition."""

from __future__ import annotations

from datetime import timedelta

import pytest

from integrations.outbound.retries import RetryPolicy, RetryRuleError


def test_default_rules() -> None:
    rules = RetryPolicy.default()
    assert rules.decide("no-answer", 1, False).delay == timedelta(minutes=30)
    assert not rules.decide("no-answer", 2, False).final
    assert rules.decide("no-answer", 3, False).final  # twice retried
    assert rules.decide("busy", 3, False).delay == timedelta(minutes=10)
    assert rules.decide("busy", 4, False).final
    assert rules.decide("voicemail-left", 1, False).delay == timedelta(hours=4)
    assert rules.decide("voicemail-left", 2, False).final
    assert rules.decide("failed", 1, retryable=False).final  # e.g. an invalid number
    assert not rules.decide("failed", 1, retryable=True).final
    for final in ("confirmed", "opted-out", "do-not-call", "completed", "transferred"):
        assert rules.decide(final, 1, True).final


def test_rules_from_the_command_line_override_the_defaults() -> None:
    rules = RetryPolicy.parse(["no-answer=5x2h", "busy=0x1m", "machine-no-message=1x1d"])
    assert rules.decide("no-answer", 5, False).delay == timedelta(hours=2)
    assert rules.decide("busy", 1, False).final
    assert rules.decide("machine-no-message", 1, False).delay == timedelta(days=1)
    assert RetryPolicy.from_json(rules.as_json()) == rules
    assert "no-answer=5x2h" in rules.texts()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("no-answer=2", "<disposition>=<times>x<delay>"),
        ("maybe=1x1m", "not a disposition"),
        ("busy=99x1m", "0 to 20"),
    ],
)
def test_bad_rules(text: str, error: str) -> None:
    with pytest.raises(RetryRuleError, match=error):
        RetryPolicy.parse([text])
