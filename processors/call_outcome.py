"""What a call record is decided from and where it goes: the outcome policy, the sink.

:class:`OutcomePolicy` turns a call's :class:`CallFacts` into its outcome;
:class:`RecordSink` is the store the recorder (:mod:`processors.call_recorder`) writes
to; :func:`mask_keyed_digits` keeps keyed entries (PINs) out of every record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from integrations.storage.records import CallEnd, CallStart, CallUpdate, Outcome, TurnRecord


class RecordSink(Protocol):
    """Where records go (a :class:`~integrations.storage.store.CallStore`)."""

    def start_call(self, record: CallStart) -> None:
        """Record a call start."""

    def save_turn(self, record: TurnRecord) -> None:
        """Record (or re-record) a turn."""

    def update_call(self, record: CallUpdate) -> None:
        """Record call-level facts."""

    def end_call(self, record: CallEnd) -> None:
        """Record the end of a call."""


@dataclass
class CallFacts:
    """What the outcome of a call is decided from."""

    caller_turns: int = 0
    acted: bool = False
    last_band: str | None = None
    goodbye: bool = False
    escalated: bool = False
    failed: bool = False


class OutcomePolicy:
    """Decides a call's outcome.

    failed (pipeline error) > escalated > resolved (the dialogue ended the call on
    a goodbye) > abandoned (no caller turn, or the caller left while the agent was
    clarifying or repairing) > resolved (the agent acted on at least one turn).
    """

    def decide(self, facts: CallFacts) -> Outcome:
        """The outcome for ``facts``."""
        if facts.failed:
            return Outcome.FAILED
        if facts.escalated:
            return Outcome.ESCALATED
        if facts.goodbye:
            return Outcome.RESOLVED
        if facts.caller_turns == 0 or facts.last_band in ("clarify", "repair"):
            return Outcome.ABANDONED
        return Outcome.RESOLVED if facts.acted else Outcome.ABANDONED


_KEYED = re.compile(r"^\s*DTMF:\s*([0-9*#A-Da-d]+)\s*$")


def mask_keyed_digits(text: str) -> str:
    """Keyed entries (``DTMF: 4729#``) are stored as their length only: they may be PINs."""
    match = _KEYED.match(text)
    return f"DTMF: {'#' * len(match.group(1))}" if match else text
