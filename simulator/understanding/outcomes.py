"""What a call did with the caller's request, read from the agent's per-call events.

Each call of ``callagent bench understanding`` speaks one request (after a context line,
for a request judged in context). Its outcome comes from the agent's event stream
(``/api/calls/{id}/events``, see :mod:`processors.call_events`), never from log text:

- the **first NLU decision** after the caller started speaking the request gives the
  outcome: **acted right** (the act band on the intended intent; for an out-of-scope
  request, recognised as out of scope), **clarified** on the right or a wrong intent,
  **repaired** (asked to repeat) or **acted wrong** (the act band on another intent);
  no decision at all is ``no_decision``;
- a **hand-off to a person** in the turn of that decision (any escalation trigger: the
  caller asked for a person in words the classifier missed, or a turn read as angry) is
  what the caller got, whatever the decision said: acted right when the request was for
  one of the agent's hand-off intents (``escalation`` in the agent file: a person, an
  emergency), else **acted wrong** (a caller asking a price was put through to the desk);
- the caller was **cut off** when the agent's turn ended (it took a decision or started
  its reply) while the caller was still speaking the request;
- the request was **answered in fragments** when the agent made more than one decision
  on the request's speech (a decision whose caller turn began before the request
  ended): it answered part of what the caller said, during the request or after it
  (the rest of the words arriving from the recogniser after the first decision).

Only the request is judged: decisions, cut-offs and fragments before its onset (on a
context line and the agent's reply to it) do not count; the last decision before the
onset is kept, to show what the context line was taken as.

Event times count from the call's start on the agent's clock; the phone measures from
the stream's start. The two are aligned on the greeting: the agent's first
``bot_started`` is when the phone first heard bot audio. The phone hears that audio a
little later than the agent sent it, so aligned event times are, if anything, a few
tens of milliseconds late: a cut-off is never counted where there was none.

The recogniser's word errors come from the call record's transcript of the request
(the caller turns the request's decisions were made on).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from simulator.understanding.requests import OUT_OF_SCOPE

TURN_EVENTS = frozenset({"nlu", "bot_started"})
"""Events that show the agent's turn has ended: a decision, or the start of its reply."""


class Outcome(StrEnum):
    """What the agent did with a request at its first decision."""

    ACTED_RIGHT = "acted_right"
    CLARIFIED_RIGHT = "clarified_right"
    CLARIFIED_WRONG = "clarified_wrong"
    REPAIRED = "repaired"
    ACTED_WRONG = "acted_wrong"
    NO_DECISION = "no_decision"


OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)


@dataclass(frozen=True)
class Decision:
    """One NLU decision, on the phone's timeline.

    Parameters:
        at_s: When the agent published it (seconds since the stream started).
        intent: The chosen intent (``out_of_scope`` included).
        band: ``act``, ``clarify`` or ``repair``.
        confidence: The classifier's confidence.
        index: Its position among the call's decisions (0 first).
        path: Which NLU component decided (``empty``: nothing was recognised).
        offered: The intents the agent's reply to it offered (a clarifying question may
            offer the runner-up too), empty when the reply did not say.
    """

    at_s: float
    intent: str
    band: str
    confidence: float | None = None
    index: int = 0
    path: str | None = None
    offered: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reading:
    """How the call went for the request (see the module docstring).

    Parameters:
        outcome: The outcome of the first decision after the request started.
        decision: That decision (None without one).
        cut_off: The agent's turn ended while the caller was still speaking.
        cut_at_s: When (phone timeline), if it was cut off.
        request_decisions: Indexes of the decisions made on the request's speech:
            after its onset, in a caller turn that began before its end.
        before: The last decision before the request started (on its context line,
            if it had one), None without one.
    """

    outcome: Outcome
    decision: Decision | None
    cut_off: bool
    cut_at_s: float | None
    request_decisions: tuple[int, ...]
    before: Decision | None = None
    handed_off: bool = False
    """The agent handed the call to a person in the turn of ``decision``."""

    @property
    def fragmented(self) -> bool:
        """More than one decision was made on the request's speech."""
        return len(self.request_decisions) > 1


def clock_offset(events: Sequence[dict[str, Any]], greeting_heard_s: float) -> float | None:
    """Phone time minus agent time, from the greeting (None without a ``bot_started``)."""
    for event in events:
        if event.get("type") == "bot_started":
            return greeting_heard_s - float(event["at_s"])
    return None


def decisions(events: Sequence[dict[str, Any]], offset: float) -> list[Decision]:
    """The call's NLU decisions in order, on the phone's timeline (and what each reply offered)."""
    out: list[Decision] = []
    for event in events:
        if event.get("type") == "reply" and out and not out[-1].offered:
            out[-1] = replace(out[-1], offered=tuple(event.get("offered") or ()))
        if event.get("type") != "nlu":
            continue
        confidence = event.get("confidence")
        out.append(
            Decision(
                at_s=float(event["at_s"]) + offset,
                intent=str(event.get("intent") or OUT_OF_SCOPE),
                band=str(event.get("band") or "repair"),
                confidence=None if confidence is None else float(confidence),
                index=len(out),
                path=event.get("path"),
            )
        )
    return out


def classify(intended: str, decision: Decision | None) -> Outcome:
    """The outcome of one decision on a request meant as ``intended``.

    An out-of-scope request is handled right when the agent recognises it as out of
    scope (whatever it then says); acting on any intent is acting wrong. A turn in
    which nothing was recognised (path ``empty``) is a repair, whatever was meant. A
    clarifying question that offered the intended intent among two is clarified right.
    """
    if decision is None:
        return Outcome.NO_DECISION
    if decision.path == "empty":
        return Outcome.REPAIRED
    right = decision.intent == intended
    if intended == OUT_OF_SCOPE and right:
        return Outcome.ACTED_RIGHT
    if decision.band == "act":
        return Outcome.ACTED_RIGHT if right else Outcome.ACTED_WRONG
    if decision.band == "clarify":
        right = right or intended in decision.offered
        return Outcome.CLARIFIED_RIGHT if right else Outcome.CLARIFIED_WRONG
    return Outcome.REPAIRED


def read_call(
    intended: str,
    events: Sequence[dict[str, Any]],
    *,
    greeting_heard_s: float,
    caller_onset_s: float,
    caller_end_s: float,
    hand_off_intents: frozenset[str] = frozenset(),
) -> Reading:
    """Read a request's outcome and whether the caller was cut off from the call's events.

    Args:
        intended: The request's intent (``kb:<id>`` and ``out_of_scope`` included).
        events: The call's events as ``/api/calls/{id}/events`` returns them.
        greeting_heard_s: When the phone first heard the greeting (aligns the clocks).
        caller_onset_s: When the caller's voice started (phone timeline).
        caller_end_s: When the caller's voice ended (phone timeline).
        hand_off_intents: The intents a hand-off to a person serves (see the module).
    """
    offset = clock_offset(events, greeting_heard_s)
    if offset is None:
        return Reading(Outcome.NO_DECISION, None, False, None, ())
    every = decisions(events, offset)
    made = [d for d in every if d.at_s >= caller_onset_s]
    earlier = [d for d in every if d.at_s < caller_onset_s]
    first = made[0] if made else None
    starts = [float(e["at_s"]) + offset for e in events if e.get("type") == "user_started"]
    on_request = [
        d.index
        for d in made
        if max((t for t in starts if t <= d.at_s), default=caller_onset_s) < caller_end_s
    ]
    cut_at = _turn_ended_during(events, offset, caller_onset_s, caller_end_s)
    outcome = classify(intended, first)
    handed_off = first is not None and _handed_off(events, offset, first.at_s)
    if handed_off:
        outcome = Outcome.ACTED_RIGHT if intended in hand_off_intents else Outcome.ACTED_WRONG
    return Reading(
        outcome=outcome,
        decision=first,
        cut_off=cut_at is not None,
        cut_at_s=cut_at,
        request_decisions=tuple(on_request),
        before=earlier[-1] if earlier else None,
        handed_off=handed_off,
    )


def _handed_off(events: Sequence[dict[str, Any]], offset: float, decided_s: float) -> bool:
    """Whether an escalation followed the decision at ``decided_s`` before the caller went on."""
    for event in events:
        at = float(event["at_s"]) + offset
        if at < decided_s:
            continue
        if event.get("type") == "user_started":
            return False
        if event.get("type") == "escalation":
            return True
    return False


def _turn_ended_during(
    events: Sequence[dict[str, Any]], offset: float, onset_s: float, end_s: float
) -> float | None:
    """When the agent first ended a turn (decision or reply) inside the caller's speech."""
    for event in events:
        if event.get("type") in TURN_EVENTS:
            at = float(event["at_s"]) + offset
            if onset_s <= at < end_s:
                return at
    return None


def request_transcript(
    turns: Sequence[dict[str, Any]], request_decisions: Sequence[int]
) -> str | None:
    """What the recogniser heard of the request, from the call record's turns.

    The record has one caller turn per decision, in order (``intent`` set), plus any
    transcribed caller turn no decision was made on. The request's transcript is the
    caller text from the turn after the last decision before the request up to the
    turn of its last decision. A turn the agent decided on joined to the fragment before
    it (``processors.fragment_join.FragmentJoiner``: its stored caller text is the fragment's
    words followed by its own) replaces the turns whose words it already holds, so no
    words count twice. None when the record does not show the decisions.
    """
    caller = sorted((t for t in turns if t.get("kind") == "caller"), key=lambda t: t["seq"])
    decided = [t for t in caller if t.get("intent") is not None]
    if not request_decisions or max(request_decisions) >= len(decided):
        return None
    first, last = min(request_decisions), max(request_decisions)
    low = decided[first - 1]["seq"] if first > 0 else -1
    high = decided[last]["seq"]
    parts: list[str] = []
    for t in caller:
        text = str(t.get("caller_text") or "").strip()
        if not (low < t["seq"] <= high and text):
            continue
        while parts and _holds(text, parts[-1]):
            parts.pop()
        parts.append(text)
    return " ".join(parts)


def _holds(text: str, earlier: str) -> bool:
    """Whether ``text`` already holds ``earlier``'s words, in order and together."""
    # imported here: processors.barge_in loads Pipecat, whose banner the CLI must not print
    # (every `callagent` command registers this module's bench)
    from processors.barge_in import normalize_words

    words = normalize_words(earlier)
    return bool(words) and f" {words} " in f" {normalize_words(text)} "
