"""Irreversible actions wait for the line that announces them; a caller going on withdraws them.

A hand-off to a person, a goodbye (the call ends) and a write-back to the caller's CRM
record (an appointment moved or cancelled) cannot be taken back once carried out, yet they
are decided the moment a turn ends, and a turn can end inside a caller's request: "My tooth
broke." is read as an emergency and handed off while the caller goes on "... last year, and
the crown feels loose now, can I get it checked?"; "Yes." to "Shall I cancel it?" is
written back while the caller goes on "... no, wait, can I move it instead?". Two
processors keep such a decision open while the caller may still be talking:

- :class:`ActionHold` (between the escalation and the transfer processors) holds the frame
  that carries the action out (the hand-off's ``EscalationFrame``, the goodbye's
  ``EndWorkerFrame``, the dialogue's ``WriteBackFrame``, which the CRM processor waits on)
  until the bot's line announcing it has been heard to its end, not cut by the caller.
  Processors upstream learn of it from an :class:`~processors.frames.ActionHeldFrame` and an
  :class:`~processors.frames.ActionReleasedFrame`. A backchannel over the line ("mhm", a
  bare "okay": the backchannel filter drops the turn and resumes the line) leaves the
  action to go on.
- :class:`ActionWithdrawal` (after the fragment joiner, before the NLU router): a caller's
  turn with words in it that arrives while a goodbye is held withdraws it; a hand-off only
  when the turn goes on with the one it was decided on or opens with a correction
  (:class:`~processors.frames.ActionWithdrawnFrame`, for the hold and the escalation).
  When the caller went on at once (its :class:`JoinRule` says so) the turn is also joined
  to the one the action was decided on, and a :class:`~processors.frames.TurnJoinedFrame`
  has the NLU router and the dialogue decide both parts as one turn; otherwise (a new
  request: "no wait, actually ...") the turn is decided on its own, as any barge-in.

Which frames are irreversible actions, and how each is carried out, is told by small
:class:`~processors.irreversible_actions.IrreversibleAction` strategies (a hand-off, a
goodbye, a write-back). Log lines carry no caller words.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InterruptionFrame,
    LLMContextFrame,
    TTSSpeakFrame,
    UserStartedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from processors.barge_in import ReplyResumedFrame, is_backchannel
from processors.continuation import (
    Continuation,
    JoinRule,
    JoinWhenGoingOnAtOnce,
    join_last_two_user_turns,
    opens_with_correction,
)
from processors.frames import (
    ActionHeldFrame,
    ActionReleasedFrame,
    ActionWithdrawnFrame,
    NLUResultFrame,
    TurnJoinedFrame,
)
from processors.irreversible_actions import Goodbye, HandOff, IrreversibleAction, WriteBack
from processors.transfer import LINE_TIMEOUT_S
from processors.user_turn import user_text


class ActionHold(FrameProcessor):
    """Between the escalation and the transfer: an irreversible action waits for its line."""

    def __init__(
        self,
        actions: tuple[IrreversibleAction, ...] | None = None,
        *,
        line_timeout_s: float = LINE_TIMEOUT_S,
        **kwargs: Any,
    ):
        """Hold one call's irreversible actions.

        Args:
            actions: The kinds of action held (default: a hand-off, a goodbye and a
                write-back).
            line_timeout_s: Longest hold: the action goes on after it whatever happened.
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._actions = actions if actions is not None else (HandOff(), Goodbye(), WriteBack())
        self._timeout_s = line_timeout_s
        self._held: list[tuple[IrreversibleAction, Frame]] = []
        self._speaking = False
        self._line_pending = False
        """A line was queued that the bot has not finished speaking."""
        self._cut = False
        """The caller cut the line the bot was speaking (what they said is not known yet)."""
        self._release_task: asyncio.Task[None] | None = None
        self._timeout_task: asyncio.Task[None] | None = None
        self.withdrawn = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Hold actions until their line is heard; drop them when withdrawn."""
        await super().process_frame(frame, direction)
        if isinstance(frame, BotStartedSpeakingFrame):
            self._speaking, self._cut = True, False
            await self._cancel_release()
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._speaking = self._line_pending = False
            if not self._cut:
                self._release_soon()
        elif direction is not FrameDirection.DOWNSTREAM:
            pass
        elif isinstance(frame, InterruptionFrame):
            self._line_pending = False  # the lines queued are dropped
            if self._held:
                self._cut = True
                await self._cancel_release()
        elif isinstance(frame, TTSSpeakFrame):
            self._line_pending = True
            await self._cancel_release()
        elif isinstance(frame, ReplyResumedFrame | NLUResultFrame) and self._held and self._cut:
            # the caller's turn left the action (a backchannel, or words that did not
            # withdraw it): it goes on once the line that follows, if any, is heard
            self._cut = False
            self._release_soon()
        elif isinstance(frame, ActionWithdrawnFrame) and self._held:
            await self._withdraw(frame)
        elif await self._hold(frame):
            return
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        """Stop the timers."""
        await super().cleanup()
        await self._cancel_release()
        await self._cancel_timeout()

    async def _hold(self, frame: Frame) -> bool:
        action = next((a for a in self._actions if a.carries_out(frame)), None)
        if action is None:
            return False
        self._held.append((action, frame))
        logger.debug(f"{action.name} held until its line is heard")
        await self.push_frame(ActionHeldFrame(action=action.name), FrameDirection.UPSTREAM)
        if self._timeout_task is None:
            self._timeout_task = self.create_task(self._expire(), "action_hold_timeout")
        if not (self._speaking or self._line_pending):
            self._release_soon()  # nothing announces it: nothing to wait for
        return True

    def _release_soon(self) -> None:
        if self._held and self._release_task is None:
            self._release_task = self.create_task(self._release_after_grace(), "action_release")

    async def _release_after_grace(self) -> None:
        await asyncio.sleep(max((action.grace_s for action, _frame in self._held), default=0.0))
        self._release_task = None
        if not (self._speaking or self._line_pending or self._cut):
            await self._release()

    async def _release(self) -> None:
        held, self._held = self._held, []
        await self._cancel_timeout()
        for action, frame in held:
            logger.debug(f"{action.name}: its line was heard, carried out")
            action.release(frame)
            await self.push_frame(ActionReleasedFrame(action=action.name), FrameDirection.UPSTREAM)
            carried = action.carried(frame)
            if carried is not None:
                await self.push_frame(carried)

    async def _withdraw(self, withdrawal: ActionWithdrawnFrame) -> None:
        kept: list[tuple[IrreversibleAction, Frame]] = []
        for action, frame in self._held:
            if withdrawal.withdraws(action.name):
                self.withdrawn += 1
                logger.info(f"{action.name} withdrawn: the caller went on over its line")
            else:
                kept.append((action, frame))
        self._held = kept
        if self._held:
            return  # the rest goes on once the caller's turn is answered (see process_frame)
        self._cut = False
        await self._cancel_release()
        await self._cancel_timeout()

    async def _expire(self) -> None:
        await asyncio.sleep(self._timeout_s)
        self._timeout_task = None
        if self._held:
            logger.warning("the line of a held action was not heard in time; going on")
            await self._release()

    async def _cancel_release(self) -> None:
        task, self._release_task = self._release_task, None
        if task is not None and task is not asyncio.current_task():
            await self.cancel_task(task)

    async def _cancel_timeout(self) -> None:
        task, self._timeout_task = self._timeout_task, None
        if task is not None and task is not asyncio.current_task():
            await self.cancel_task(task)


# Withdrawing a held action when the caller goes on


WITHDRAWN_BY_ANY_WORDS = frozenset({Goodbye.name})
"""Actions any words over their line withdraw (not a backchannel).

A hand-off is withdrawn only when the caller goes on with the turn it was decided on, or
opens with a correction ("No wait, actually ..."): a caller who says "Please hurry." over
an emergency's hand-off line must still reach a person. Ending the call on a caller who is
talking is worse than answering one more turn, so a goodbye is withdrawn by any words. A
write-back is withdrawn as a hand-off is: "Thanks." over "Your appointment is cancelled."
must not leave it standing.
"""


class ActionWithdrawal(FrameProcessor):
    """After the fragment joiner: the caller's words over a held action's line withdraw it.

    Which words withdraw which action: :data:`WITHDRAWN_BY_ANY_WORDS`.
    """

    def __init__(self, *, join: JoinRule | None = None, **kwargs: Any):
        """Withdraw one call's held actions.

        Args:
            join: When the turn that withdraws an action is joined to the turn the action
                was decided on (default: :class:`JoinWhenGoingOnAtOnce`).
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._join = join if join is not None else JoinWhenGoingOnAtOnce()
        self._held: set[str] = set()
        self._turn_at: float | None = None
        """When the latest turn went to the NLU."""
        self._bot_started_at: float | None = None
        """When the bot's answer to it started playing."""
        self._went_on: Continuation | None = None
        self._joined = False
        """The fragment joiner already joined the turn under way."""
        self.withdrawn = 0
        self.joined = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Follow held actions, the bot's speech and the caller's turns."""
        await super().process_frame(frame, direction)
        if isinstance(frame, ActionHeldFrame):
            self._held.add(frame.action)
        elif isinstance(frame, ActionReleasedFrame):
            self._held.discard(frame.action)
        elif isinstance(frame, BotStartedSpeakingFrame) and self._bot_started_at is None:
            self._bot_started_at = time.monotonic()
        elif isinstance(frame, UserStartedSpeakingFrame):
            if self._held and self._went_on is None and self._turn_at is not None:
                now = time.monotonic()
                heard = now - self._bot_started_at if self._bot_started_at is not None else 0.0
                self._went_on = Continuation(after_s=now - self._turn_at, heard_s=heard)
        elif direction is FrameDirection.DOWNSTREAM and isinstance(frame, TurnJoinedFrame):
            self._joined = True
        elif (
            direction is FrameDirection.DOWNSTREAM
            and isinstance(frame, LLMContextFrame)
            and not getattr(frame, "speculation", False)
        ):
            now = time.monotonic()
            await self._on_turn(frame)
            self._turn_at, self._bot_started_at = now, None
            self._went_on, self._joined = None, False
        await self.push_frame(frame, direction)

    async def _on_turn(self, frame: LLMContextFrame) -> None:
        text = user_text(frame)
        if not self._held or is_backchannel(text):
            return
        went_on = self._went_on or Continuation(after_s=float("inf"), heard_s=float("inf"))
        joins = not self._joined and self._join.joins(text, went_on)
        withdrawn = (
            set(self._held)
            if self._joined or joins or opens_with_correction(text)
            else self._held & WITHDRAWN_BY_ANY_WORDS
        )
        if not withdrawn:
            # "Please hurry." over "I'm putting you through to someone now.": the hand-off
            # goes on (an emergency must still reach a person); the turn is decided as usual
            logger.info("caller spoke over a held action's line, neither going on nor correcting")
            return
        self._held -= withdrawn
        self.withdrawn += 1
        await self.push_frame(ActionWithdrawnFrame(actions=frozenset(withdrawn)))
        if not joins:
            logger.info("caller went on over a held action's line: withdrawn")
            return
        if join_last_two_user_turns(frame):
            self.joined += 1
            logger.info("caller went on after an acted turn: withdrawn, both parts are one turn")
            await self.push_frame(TurnJoinedFrame())
