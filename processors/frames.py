"""Custom frames that carry results between callagent's processors.

Processors never hold references to each other; they talk through these frames
(and the shared per-call context). Every frame is a plain dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pipecat.frames.frames import DataFrame, SystemFrame

if TYPE_CHECKING:
    from integrations.crm.base import CallerRecord


class Band(StrEnum):
    """What the dialogue should do with an NLU decision."""

    ACT = "act"
    """High confidence: carry out the intent."""
    CLARIFY = "clarify"
    """Medium confidence: confirm the most likely intent with the caller."""
    REPAIR = "repair"
    """Low confidence or out of scope: ask again and count a failed turn."""


class DecisionPath(StrEnum):
    """Which component produced an NLU decision."""

    CLASSIFIER = "classifier"
    LLM = "llm"
    DTMF = "dtmf"
    EMPTY = "empty"


OUT_OF_SCOPE = "out_of_scope"


@dataclass
class NLUResultFrame(DataFrame):
    """The NLU router's decision for one caller turn.

    Parameters:
        text: The caller's utterance (or DTMF digit string) that was classified.
        intent: The chosen intent name, or ``out_of_scope``.
        confidence: Confidence in ``intent`` between 0 and 1.
        runner_up: The second most likely intent, if any.
        margin: ``confidence`` minus the runner-up's confidence.
        entities: Extracted entities by kind (e.g. ``{"date": "...", "digits": "4729"}``).
        path: Which component decided.
        band: What the dialogue should do.
        elapsed_ms: Time the decision took.
        unsure: The words themselves are doubtful: a turn not understood (neither an intent
            nor a clearly heard out-of-scope request), an empty turn, a fragment taken
            for an answer when nothing was asked, or words the recogniser itself was
            unsure of (``heard_confidence`` below the router's bar, e.g. in babble).
            Nothing is read from it (sentiment), and it is never taken for a clearly
            heard out-of-scope request.
        heard_confidence: The recogniser's confidence in the turn's words, 0 to 1 (None:
            not known, e.g. keyed digits or a recogniser without scores).
    """

    text: str = ""
    intent: str = OUT_OF_SCOPE
    confidence: float = 0.0
    runner_up: str | None = None
    margin: float = 0.0
    entities: dict[str, Any] = field(default_factory=dict)
    path: DecisionPath = DecisionPath.CLASSIFIER
    band: Band = Band.REPAIR
    elapsed_ms: float = 0.0
    unsure: bool = False
    heard_confidence: float | None = None


@dataclass
class BotReplyFrame(DataFrame):
    """What the dialogue decided to say for one turn (for records and the UI).

    Parameters:
        text: The reply text handed to TTS.
        intent: The intent the reply answers, if any.
        ends_call: Whether the dialogue ends the call after this reply.
        hands_off: Whether the reply announces a transfer to a person.
        offered: The intents a clarifying question offers the caller (empty otherwise).
    """

    text: str = ""
    intent: str | None = None
    ends_call: bool = False
    hands_off: bool = False
    offered: tuple[str, ...] = ()


@dataclass
class GreetingFrame(DataFrame):
    """Asks the dialogue to greet the caller (by name when the caller's record is known)."""

    interruptible: bool = field(default=False, init=False)


@dataclass
class HandOffNowFrame(DataFrame):
    """Hand the call to a person now, whatever the caller said (queued into a live call).

    The server's drain queues it when a call outlives ``CALLAGENT_DRAIN_SECS``; the
    escalation processor escalates on it (trigger ``server_stopping``) unless the call was
    already handed off.

    Parameters:
        reason: Why, for the record and the summary (no caller data).
    """

    reason: str = ""
    interruptible: bool = field(default=False, init=False)


@dataclass
class TurnJoinedFrame(DataFrame):
    """The caller went on after a fragment: the next turn replaces it (pushed just before it).

    The decision taken on the fragment is withdrawn: the NLU router and the dialogue decide
    the joined turn from the state they were in before the fragment (an outbound opening's
    question is still the one answered).
    """


@dataclass
class ActionHeldFrame(SystemFrame):
    """An irreversible action waits for the bot's line announcing it (pushed upstream).

    The action hold keeps a hand-off, a goodbye or a CRM write-back decided on a turn until
    its line has been heard; the caller going on over that line withdraws it
    (:class:`~processors.action_hold.ActionWithdrawal`).

    Parameters:
        action: What is held: ``hand_off``, ``end_call`` or ``write_back``.
    """

    action: str = ""


@dataclass
class ActionReleasedFrame(SystemFrame):
    """The held action was carried out: its line was heard (pushed upstream).

    Parameters:
        action: What was released: ``hand_off``, ``end_call`` or ``write_back``.
    """

    action: str = ""


@dataclass
class ActionWithdrawnFrame(DataFrame):
    """The caller spoke over the line announcing a held action: it is not carried out.

    Pushed just before the caller's turn (and before a
    :class:`TurnJoinedFrame` when the turn is joined to the one the action was decided on).
    The action hold drops the action; the escalation watches the call again.

    Parameters:
        actions: Which held actions are withdrawn (``hand_off``, ``end_call``,
            ``write_back``); empty: every one held. "Thank you so much." over "You're all
            confirmed. Goodbye." withdraws the goodbye, not the confirmation.
    """

    actions: frozenset[str] = frozenset()

    def withdraws(self, action: str) -> bool:
        """Whether the held ``action`` is among those withdrawn."""
        return not self.actions or action in self.actions


@dataclass
class CallerIdentityFrame(SystemFrame):
    """Who is calling, learnt after the call started (a client message, a dial-in event).

    Parameters:
        caller: Phone number, customer id or email. Caller data: never log it.
    """

    caller: str = field(default="", repr=False)


class PrefetchStatus(StrEnum):
    """How the CRM prefetch ended."""

    FOUND = "found"
    NOT_FOUND = "not_found"
    ERROR = "error"
    NO_IDENTITY = "no_identity"


@dataclass
class CallerRecordFrame(SystemFrame):
    """The caller's CRM record (or why there is none), and how long the lookup took.

    Pushed again whenever the record changes during the call (e.g. the caller verified
    their identity), so the latest one wins.

    Parameters:
        record: The record (caller data: never log it), or None.
        status: How the lookup ended.
        elapsed_ms: Call start to the CRM's answer.
        late: The answer came after the prefetch budget (it is used all the same).
        update: This is a change to an earlier record (not the prefetch answer).
    """

    record: CallerRecord | None = field(default=None, repr=False)
    status: PrefetchStatus = PrefetchStatus.NOT_FOUND
    elapsed_ms: float = 0.0
    late: bool = False
    update: bool = False


class CrmAction(StrEnum):
    """Write-backs the dialogue may ask of the CRM."""

    MOVE_APPOINTMENT = "move_appointment"
    CANCEL_APPOINTMENT = "cancel_appointment"
    CONFIRM_APPOINTMENT = "confirm_appointment"
    REQUEST_CALLBACK = "request_callback"


@dataclass
class CrmUpdateFrame(SystemFrame):
    """A write-back to the CRM, pushed upstream to the CRM processor.

    Parameters:
        action: What to change.
        customer_id: Whose record.
        params: Action arguments (``appointment_id``, ``starts_at`` ISO text, ``note``).
        after_line: Written once the bot's line announcing it has been heard (the action
            hold releases :data:`WRITE_BACK`), dropped when the caller goes on over that
            line (an :class:`ActionWithdrawnFrame`), written if the call ends first: the
            dialogue's write-backs. False: written at once.
    """

    action: CrmAction = CrmAction.REQUEST_CALLBACK
    customer_id: str = ""
    params: dict[str, Any] = field(default_factory=dict, repr=False)
    after_line: bool = False


HAND_OFF = "hand_off"
"""The held action (:class:`ActionHeldFrame` and the rest) of a hand-off decided on a turn."""
END_CALL = "end_call"
"""The held action of the call's end after the dialogue's goodbye."""
WRITE_BACK = "write_back"
"""The held action of a dialogue's CRM write-back."""


@dataclass
class WriteBackFrame(DataFrame):
    """The line just queued announces a CRM write-back (the dialogue pushes it after the line).

    Moving or cancelling an appointment cannot be taken back once written, so it waits like
    a hand-off: the action hold holds this frame until the line has been heard, then tells
    the CRM processor (an :class:`ActionReleasedFrame` for :data:`WRITE_BACK`), which writes
    the :class:`CrmUpdateFrame` it was given with ``after_line`` set.
    """


@dataclass
class EscalationFrame(DataFrame):
    """The call is being handed to a person (or the hand-off's result, see below).

    Parameters:
        trigger: What triggered it: ``explicit_request``, ``failed_turns``,
            ``negative_sentiment``, ``out_of_scope``, ``max_duration``, ``server_stopping``.
        reason: A human-readable reason (no caller data).
        summary: The structured hand-off summary (caller data: never log it).
        transfer_result: None while the transfer is pending; set on
            :class:`TransferResultFrame`.
        line_heard: The hand-off line has been heard already (the action hold waited for
            it): the transfer does not wait for it again.
    """

    trigger: str = ""
    reason: str = ""
    summary: dict[str, Any] = field(default_factory=dict, repr=False)
    transfer_result: str | None = None
    line_heard: bool = False
    interruptible: bool = field(default=False, init=False)


@dataclass
class TransferResultFrame(EscalationFrame):
    """How the transfer went (an escalation update: ``transfer_result`` is set).

    Parameters:
        ok: The transfer request was accepted.
        method: ``twilio_redirect``, ``webrtc_handoff``, ``daily_sip_refer``, ``none``.
        error: Why it failed (no caller data).
        trigger_to_request_ms: Trigger to the transfer request being accepted (or failing).
        screen_pop_delivered: The summary reached the agent desktop (None: no webhook).
        line_heard_ms: Trigger to the hand-off line heard at the far end (None: unknown).
        request_ms: The transfer request itself (None: unknown).
        screen_pop_ms: Screen-pop delivery time, when delivered (None: not delivered).
    """

    ok: bool = False
    method: str = ""
    error: str = ""
    trigger_to_request_ms: float = 0.0
    screen_pop_delivered: bool | None = None
    line_heard_ms: float | None = None
    request_ms: float | None = None
    screen_pop_ms: float | None = None


@dataclass
class OutcomeFrame(SystemFrame):
    """An outbound call's outcome was decided (pushed downstream; the recorder keeps it).

    Parameters:
        disposition: A :class:`integrations.outbound.dispositions.Disposition` value.
        intent: The intent that decided it, if one did.
    """

    disposition: str = ""
    intent: str | None = None


@dataclass
class DoNotCallFrame(SystemFrame):
    """The callee asked not to be called again (their number goes on the do-not-call list).

    Parameters:
        reason: What asked for it (``spoken``, ``keypad``), never the callee's words.
    """

    reason: str = "spoken"


@dataclass
class MachineVerdictFrame(SystemFrame):
    """Who answered an outbound call: a person or a machine (answering-machine detection).

    Parameters:
        verdict: A :class:`integrations.outbound.dispositions.MachineVerdict` value.
        source: What decided it: ``timing``, ``words``, ``beep``, ``provider``, ``silence``.
        decided_after_s: Seconds from the answer to the verdict.
        beep_at_s: Seconds from the answer to the end of the machine's beep, if one was heard.
    """

    verdict: str = ""
    source: str = ""
    decided_after_s: float = 0.0
    beep_at_s: float | None = None
