"""What an outbound call came to, and who answered it."""

from __future__ import annotations

from enum import StrEnum


class Disposition(StrEnum):
    """The outcome of one outbound attempt, as recorded, exported and retried on."""

    CONFIRMED = "confirmed"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"
    VOICEMAIL_LEFT = "voicemail-left"
    MACHINE_NO_MESSAGE = "machine-no-message"
    """A machine answered and no message could be left (no beep, or the greeting ran on)."""
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    OPTED_OUT = "opted-out"
    DO_NOT_CALL = "do-not-call"
    """Never dialled: the number is on the do-not-call list."""
    FAILED = "failed"
    TRANSFERRED = "transferred"
    COMPLETED = "completed"
    """A person answered and the call ended without one of the outcomes above."""


class MachineVerdict(StrEnum):
    """Who answered an outbound call."""

    HUMAN = "human"
    MACHINE = "machine"
    UNKNOWN = "unknown"
