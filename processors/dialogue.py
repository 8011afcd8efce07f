"""Deterministic dialogue policy: NLU decisions in, what the agent says out.

The policy answers intents and knowledge-base questions from the agent
definition, fills slots, asks a clarifying question for medium-confidence
decisions and repairs low-confidence ones. A clearly heard request the agent does
not handle gets the agent's honest out-of-scope reply (what it can do, or a person)
rather than a repair. A second repair in a row, or a repair of a turn whose words
were not heard at all, offers the keypad. When an LLM is configured, turns the
policy cannot answer are passed on to it as the turn's ``LLMContextFrame``. On a call the
agent placed, an :class:`~processors.outbound_script.OutboundScript` gives the opening and
what acting on an intent records (outcome, do-not-call).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    EndWorkerFrame,
    Frame,
    LLMContextFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from integrations.crm.base import CallerRecord
from processors.agent_definition import AgentDefinition, Intent, IntentAction, Slot
from processors.caller_context import caller_fields, render
from processors.clarify_choice import ClarifyChoice
from processors.frames import (
    OUT_OF_SCOPE,
    Band,
    BotReplyFrame,
    CallerRecordFrame,
    CrmAction,
    CrmUpdateFrame,
    DecisionPath,
    GreetingFrame,
    NLUResultFrame,
    TurnJoinedFrame,
    WriteBackFrame,
)
from processors.outbound_script import OutboundScript

AFFIRM = "affirm"
DENY = "deny"
DTMF_ENTRY = "dtmf_entry"
"""The NLU router's intent for keyed digits (entities carry ``digits``)."""


@dataclass
class Reply:
    """What the policy decided for one turn."""

    text: str
    intent: str | None = None
    action: IntentAction = IntentAction.ANSWER
    crm_update: CrmUpdateFrame | None = None
    """A write-back to the caller's CRM record that this reply announces."""
    done: bool = False
    """The intent was acted on (not a question about it: a slot, a clarification)."""
    offered: tuple[str, ...] = ()
    """The intents a clarifying question offers (the first is ``intent``)."""


@dataclass
class _State:
    """What the conversation is waiting for."""

    pending_slot: tuple[Intent, Slot, dict[str, str]] | None = None
    pending_confirmation: tuple[Intent, ...] = ()
    """The intents a clarifying question offered (one: a yes acts on it)."""
    failures: int = 0
    repairs_said: int = 0
    filled: dict[str, str] = field(default_factory=dict)
    opening_asked: bool = False
    """The outbound opening's question waits for its yes or no."""


class DialoguePolicy:
    """Turns one NLU decision into a reply; holds the per-call conversation state."""

    def __init__(
        self,
        agent: AgentDefinition,
        *,
        llm_available: bool = False,
        script: OutboundScript | None = None,
    ):
        """One call's policy (``script``: the outbound call's, None on an inbound call)."""
        self._agent = agent
        self._choice = ClarifyChoice.for_agent(agent)
        self._llm_available = llm_available
        self._script = script
        self._state = _State()
        self._before_turn = _State()
        """The state before the latest decision (restored when the turn is withdrawn)."""
        self._caller: CallerRecord | None = None

    @property
    def caller(self) -> CallerRecord | None:
        """The caller's CRM record, once known."""
        return self._caller

    def set_caller(self, record: CallerRecord | None) -> None:
        """Use the caller's CRM record from now on (greeting, slots, answers)."""
        self._caller = record

    def greeting(self) -> str:
        """The greeting, by name when the record is known; outbound: the opening (a question)."""
        fields = caller_fields(self._caller)
        greeting = render(self._agent.greeting_known_caller, fields) or self._agent.greeting
        if self._script is None:
            return greeting
        self._state.opening_asked = True
        return self._script.opening(fields, fallback=greeting)

    def records(self, reply: Reply) -> list[Frame]:
        """What acting on the reply's intent records on an outbound call (outcome, opt-out)."""
        if self._script is None or not reply.done or reply.intent is None:
            return []
        return self._script.frames_for(reply.intent)

    @property
    def consecutive_failures(self) -> int:
        """How many turns in a row were not understood."""
        return self._state.failures

    def withdraw_last_turn(self) -> None:
        """Forget the latest decision: the caller went on, and the joined turn replaces it.

        What it asked for (a slot, a confirmation) is no longer waited for, and what it
        answered (the outbound opening's question) is open again.
        """
        self._state = self._before_turn

    def decide(self, nlu: NLUResultFrame) -> Reply | None:
        """Decide the reply for a turn.

        Returns:
            The reply, or None when the turn should go to the LLM.
        """
        self._before_turn = _copy_state(self._state)
        state = self._state
        if nlu.intent == DTMF_ENTRY:
            return self._keyed(nlu)
        intent = self._agent.intent(nlu.intent)
        if state.opening_asked:
            state.opening_asked = False
            answer = self._answer_opening(nlu)
            if answer is not None:
                return answer

        if state.pending_confirmation:
            if nlu.intent in (AFFIRM, DENY) and nlu.band is Band.REPAIR and nlu.unsure:
                # a yes or no the recogniser doubted confirms nothing: ask again, still open
                return self._repair(turn=nlu)
            offered, state.pending_confirmation = state.pending_confirmation, ()
            first = offered[0]
            if nlu.intent == AFFIRM and len(offered) > 1:
                return self._clarify(offered)  # a yes to "this, or that?" picks neither
            if nlu.intent == AFFIRM:
                return self._act(first, nlu.entities)
            if nlu.intent == DENY:
                return Reply("Okay. " + self._agent.fallback)
            chosen = next((i for i in offered if i.name == nlu.intent), None)
            if len(offered) > 1 and chosen is not None and self._picked(nlu):
                return self._act(chosen, nlu.entities)

        if state.pending_slot is not None:
            waiting_intent, slot, values = state.pending_slot
            value = _entity_text(nlu.entities, slot.entity)
            if value is not None:
                state.pending_slot = None
                values[slot.name] = value
                return self._act(waiting_intent, nlu.entities, values)
            if nlu.band is not Band.ACT or intent is None or intent.name in (AFFIRM, DENY):
                return self._repair(slot.prompt)
            state.pending_slot = None  # the caller moved on to something else

        if nlu.band is Band.ACT and intent is not None and intent.name not in (AFFIRM, DENY):
            return self._act(intent, nlu.entities)
        if nlu.band is Band.CLARIFY and intent is not None and intent.name not in (AFFIRM, DENY):
            named = [self._agent.intent(name) for name in self._choice.offered(nlu)]
            return self._clarify(tuple(i for i in named if i is not None))
        if nlu.intent == OUT_OF_SCOPE and self._llm_available and nlu.text.strip():
            return None
        if intent is not None and intent.name in (AFFIRM, DENY) and nlu.band is Band.ACT:
            return Reply(self._agent.fallback)
        if self._heard_out_of_scope(nlu):
            state.failures = 0
            return Reply(self._agent.declined_line())
        return self._repair(turn=nlu)

    def _clarify(self, offered: tuple[Intent, ...]) -> Reply:
        """Ask whether the caller wanted ``offered[0]`` (or, offered two, which of them)."""
        self._state.pending_confirmation = offered
        names = tuple(i.name for i in offered)
        return Reply(self._agent.clarify_line(offered), names[0], offered=names)

    @staticmethod
    def _picked(nlu: NLUResultFrame) -> bool:
        """The caller's answer names an offered intent clearly enough to take as the choice.

        The caller was asked to choose, so a clarify-band reading counts (a one-word
        "Cancel." is a fragment the router would ask about); words the recogniser doubted
        do not.
        """
        return nlu.band in (Band.ACT, Band.CLARIFY) and not nlu.unsure

    def _answer_opening(self, nlu: NLUResultFrame) -> Reply | None:
        """A plain yes or no to the outbound opening's question (None: anything else)."""
        outbound = self._agent.outbound
        if outbound is None or nlu.band is not Band.ACT:
            return None
        yes = self._agent.intent(outbound.yes_intent) if outbound.yes_intent else None
        if nlu.intent == AFFIRM and yes is not None:
            return self._act(yes, nlu.entities)
        if nlu.intent == DENY and outbound.no_reply:
            return Reply(outbound.no_reply)
        return None

    def _heard_out_of_scope(self, nlu: NLUResultFrame) -> bool:
        """The classifier is sure a clearly heard request is not one the agent handles."""
        return (
            nlu.intent == OUT_OF_SCOPE
            and not nlu.unsure
            and nlu.path in (DecisionPath.CLASSIFIER, DecisionPath.LLM)
            and nlu.confidence >= self._agent.nlu.clarify_threshold
            and bool(nlu.text.strip())
        )

    def _keyed(self, nlu: NLUResultFrame) -> Reply:
        """Keyed digits fill a slot waiting for digits, else pick from the agent's keypad menu."""
        state = self._state
        digits = str(nlu.entities.get("digits", ""))
        if state.pending_slot is not None and state.pending_slot[1].entity == "digits" and digits:
            waiting_intent, slot, values = state.pending_slot
            state.pending_slot = None
            values[slot.name] = " ".join(digits)
            return self._act(waiting_intent, nlu.entities, values)
        chosen = self._agent.intent(self._agent.keypad.get(digits, ""))
        if chosen is None:
            return self._repair(self._agent.fallback)
        state.pending_slot = None
        state.pending_confirmation = ()
        return self._act(chosen, {})

    def _act(
        self, intent: Intent, entities: dict[str, Any], values: dict[str, str] | None = None
    ) -> Reply:
        self._state.failures = 0
        values = dict(values or {})
        known = caller_fields(self._caller)
        if self._script is not None:
            known = self._script.known(known)
        for slot in intent.slots:
            if slot.name in values:
                continue
            if slot.known_from and slot.known_from in known:
                values[slot.name] = known[slot.known_from]  # never ask what the CRM knows
                continue
            value = _entity_text(entities, slot.entity)
            if value is None:
                self._state.pending_slot = (intent, slot, values)
                return Reply(slot.prompt, intent.name)
            values[slot.name] = value
        text = render(intent.response_known_caller, {**known, **values}) or (
            intent.response.format(**values) if intent.response else ""
        )
        if intent.action is IntentAction.TRANSFER and not text:
            text = self._agent.transfer.handoff_line
        update = self._crm_update(intent, entities, known)
        return Reply(text, intent.name, intent.action, update, done=True)

    def _crm_update(
        self, intent: Intent, entities: dict[str, Any], known: dict[str, str]
    ) -> CrmUpdateFrame | None:
        """The write-back an intent asks for, when the caller's record has what it needs."""
        if not intent.crm_update or self._caller is None or "appointment_id" not in known:
            return None
        params: dict[str, Any] = {"appointment_id": known["appointment_id"]}
        if intent.crm_update == CrmAction.MOVE_APPOINTMENT:
            when = entities.get("datetime")
            value = when.get("value") if isinstance(when, dict) else None
            if not value:
                return None
            params["starts_at"] = str(value)
        return CrmUpdateFrame(
            action=CrmAction(intent.crm_update),
            customer_id=self._caller.customer_id,
            params=params,
            after_line=True,
        )

    def _repair(self, prompt: str | None = None, *, turn: NLUResultFrame | None = None) -> Reply:
        """Ask again; in noise (doubtful words) the repair offers the keypad.

        Args:
            prompt: Said after the repair line (a slot's question, the menu).
            turn: The turn repaired: when its words were doubtful (``unsure``), the keypad
                is offered from the second repair in a row, or at once when no words were
                heard at all (an empty turn).
        """
        state = self._state
        state.failures += 1
        line = self._agent.repair[state.repairs_said % len(self._agent.repair)]
        state.repairs_said += 1
        noisy = turn is not None and turn.unsure
        unheard = turn is not None and turn.path is DecisionPath.EMPTY
        if prompt is None and noisy and (state.failures >= 2 or unheard):
            prompt = self._agent.keypad_line() or None
        return Reply(f"{line} {prompt}" if prompt else line)


class DialogueProcessor(FrameProcessor):
    """Speaks the dialogue policy's reply for each NLU decision.

    Each ``NLUResultFrame`` is passed on (records and escalation read it) and
    answered: a ``BotReplyFrame`` then a ``TTSSpeakFrame`` (added to the
    conversation context). The turn's ``LLMContextFrame`` that follows it is
    forwarded to the LLM only when the policy handed the turn over; otherwise
    it is consumed. An ``end_call`` intent ends the call once its reply has
    been spoken. A CRM write-back the reply announces goes up to the CRM
    processor at once and waits there: a ``WriteBackFrame`` after the line
    has the action hold tell it when the line has been heard (a caller going
    on over the line withdraws it).
    """

    def __init__(self, policy: DialoguePolicy, **kwargs: Any):
        super().__init__(**kwargs)
        self._policy = policy
        self._forward_next_context = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Answer each classified turn."""
        await super().process_frame(frame, direction)
        if direction is not FrameDirection.DOWNSTREAM:
            await self.push_frame(frame, direction)
        elif isinstance(frame, NLUResultFrame):
            await self.push_frame(frame, direction)
            await self._answer(frame)
        elif isinstance(frame, CallerRecordFrame):
            if frame.record is not None:
                self._policy.set_caller(frame.record)
            await self.push_frame(frame, direction)
        elif isinstance(frame, GreetingFrame):
            await self.push_frame(TTSSpeakFrame(self._policy.greeting()))
        elif isinstance(frame, TurnJoinedFrame):
            self._policy.withdraw_last_turn()
            await self.push_frame(frame, direction)
        elif isinstance(frame, TranscriptionFrame):
            pass  # a keyed-digit turn, already answered from its NLU result; never spoken
        elif isinstance(frame, LLMContextFrame):
            if self._forward_next_context and not getattr(frame, "speculation", False):
                self._forward_next_context = False
                await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def _answer(self, nlu: NLUResultFrame) -> None:
        reply = self._policy.decide(nlu)
        if reply is None:
            logger.debug(f"{self}: turn handed to the LLM")
            self._forward_next_context = True
            return
        ends_call = reply.action is IntentAction.END_CALL
        hands_off = reply.action is IntentAction.TRANSFER
        if reply.crm_update is not None:
            # kept by the CRM processor until the action hold says its line was heard
            await self.push_frame(reply.crm_update, FrameDirection.UPSTREAM)
        for record in self._policy.records(reply):
            await self.push_frame(record)
        await self.push_frame(
            BotReplyFrame(
                text=reply.text,
                intent=reply.intent,
                ends_call=ends_call,
                hands_off=hands_off,
                offered=reply.offered,
            )
        )
        if reply.text:
            await self.push_frame(TTSSpeakFrame(reply.text, append_to_context=True))
        if reply.crm_update is not None:
            await self.push_frame(WriteBackFrame())  # the line above announces it
        if ends_call:
            logger.info(f"{self}: ending the call at the caller's request")
            await self.push_frame(EndWorkerFrame(reason="caller said goodbye"))


def _copy_state(state: _State) -> _State:
    """A copy of the dialogue state that later decisions do not change."""
    slot = state.pending_slot
    return replace(
        state,
        filled=dict(state.filled),
        pending_slot=(slot[0], slot[1], dict(slot[2])) if slot is not None else None,
    )


def _entity_text(entities: dict[str, Any], kind: str) -> str | None:
    """The spoken form of an entity, if the turn has one of that kind."""
    value = entities.get(kind)
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        for key in ("spoken", "text", "value"):
            if value.get(key):
                return str(value[key])
        return None
    if isinstance(value, list):
        return _entity_text({kind: value[0]}, kind) if value else None
    return str(value)
