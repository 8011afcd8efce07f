"""Which frames carry out an action that cannot be taken back, and how each is carried out.

Small strategies for the action hold (:class:`~processors.action_hold.ActionHold`): a
hand-off to a person, a goodbye (the call ends) and a write-back to the caller's CRM record.
"""

from __future__ import annotations

from pipecat.frames.frames import EndWorkerFrame, Frame

from processors.escalation import TURN_TRIGGERS
from processors.frames import (
    END_CALL,
    HAND_OFF,
    WRITE_BACK,
    BotReplyFrame,
    EscalationFrame,
    TransferResultFrame,
    WriteBackFrame,
)
from processors.transfer import RESUME_GRACE_S


class IrreversibleAction:
    """A kind of action that cannot be taken back: which frame carries it out."""

    name = ""
    grace_s = 0.0
    """After the bot stops, how long it must stay silent for the line to count as heard."""

    def carries_out(self, frame: Frame) -> bool:
        """Whether ``frame`` carries the action out (shown every downstream frame, in order)."""
        raise NotImplementedError

    def release(self, frame: Frame) -> None:
        """Mark the held frame as it goes on, its announcing line heard."""

    def carried(self, frame: Frame) -> Frame | None:
        """The frame pushed on (downstream) to carry the released action out, if any."""
        return frame


class HandOff(IrreversibleAction):
    """A transfer to a person decided on a caller's turn (not a drain, not a time limit)."""

    name = HAND_OFF
    grace_s = 0.0
    """No wait: the transfer starts hold music at once, then checks the line does not go on."""

    def carries_out(self, frame: Frame) -> bool:
        """An escalation on a turn's trigger (not a transfer's result)."""
        return (
            isinstance(frame, EscalationFrame)
            and not isinstance(frame, TransferResultFrame)
            and frame.trigger in TURN_TRIGGERS
        )

    def release(self, frame: Frame) -> None:
        """The transfer need not wait for the line again."""
        if isinstance(frame, EscalationFrame):
            frame.line_heard = True


class Goodbye(IrreversibleAction):
    """The end of the call after the dialogue's goodbye (not an idle or a drain hang-up)."""

    name = END_CALL

    def __init__(self, *, grace_s: float = RESUME_GRACE_S) -> None:
        """Watch for the dialogue's goodbye reply (``grace_s``: a pause inside the line)."""
        self.grace_s = grace_s
        self._announced = False

    def carries_out(self, frame: Frame) -> bool:
        """The ``EndWorkerFrame`` that follows a reply ending the call."""
        if isinstance(frame, BotReplyFrame):
            self._announced = frame.ends_call
        elif isinstance(frame, EndWorkerFrame) and self._announced:
            self._announced = False
            return True
        return False


class WriteBack(IrreversibleAction):
    """A write-back to the caller's CRM record that the dialogue's reply announces.

    The CRM processor keeps the write-back (a ``CrmUpdateFrame`` with ``after_line``) until
    the hold's :class:`~processors.frames.ActionReleasedFrame` says its line was heard.
    """

    name = WRITE_BACK

    def carries_out(self, frame: Frame) -> bool:
        """The dialogue's ``WriteBackFrame`` (it follows the reply's line)."""
        return isinstance(frame, WriteBackFrame)

    def carried(self, frame: Frame) -> Frame | None:
        """Nothing goes on: the release itself tells the CRM processor."""
        return None
