"""Which decisions must be sure before the agent acts: irreversible intents on doubt.

Booking, moving, cancelling, hanging up and transferring need a confident reading of a
complete request; :class:`ActGuard` says why a decision must be confirmed instead (the
router then asks). :func:`request_words` and :func:`clearly_worded` tell a request from a
filler, a greeting or a garbled fragment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from processors.agent_definition import AgentDefinition, IntentAction
from processors.frames import NLUResultFrame

FILLERS = frozenset(
    "um umm uh uhh er erm ah oh hmm mm mhm hm yeah yes so well like okay ok hi hello hey "
    "right alright".split()
)
"""Words that do not make a request: fillers, greetings, backchannels."""
FUNCTION_WORDS = frozenset(
    "a an the and or but of to in on at for by with from is are was were be been am it its "
    "this that these those i me my we our you your he she they them his her their what "
    "do does did can could would will should there here not no just".split()
)
"""Words that carry no content of their own (a transcript of only these is noise)."""
_WORD = re.compile(r"[a-z0-9']+")


def request_words(text: str) -> int:
    """How many words of ``text`` are more than fillers or greetings."""
    return sum(1 for word in _WORD.findall(text.lower()) if word not in FILLERS)


def clearly_worded(text: str) -> bool:
    """At least two content words: a request that was heard, not a garbled fragment."""
    content = [w for w in _WORD.findall(text.lower()) if w not in FILLERS | FUNCTION_WORDS]
    return len(content) >= 2


@dataclass(frozen=True)
class ActGuard:
    """Which act-band decisions must be sure before the agent acts, and how sure.

    Parameters:
        intents: The irreversible intents.
        ends_call: Those of them that end the call (checked before any request).
        follow_ups: Per intent, the entity kinds its slots ask for when missing (a slot
            question comes before anything is written: it confirms the request).
        act_threshold: Lowest confidence that acts without asking.
        min_margin: Lowest lead over the runner-up that acts without asking.
        min_words: Fewer request words than this is a fragment.

    A goodbye (``ends_call``) before the caller has asked for anything is always checked;
    after a request, the act band alone closes the call (a lone "Bye." is the usual end).
    In answer to the agent's own question (an outbound call's opening), one that ends the
    call (an opt-out, a wrong number) is acted on when it is as sure as any irreversible act.
    """

    intents: frozenset[str] = frozenset()
    ends_call: frozenset[str] = frozenset()
    follow_ups: Mapping[str, frozenset[str]] = field(default_factory=dict)
    act_threshold: float = 0.93
    min_margin: float = 0.5
    min_words: int = 2

    @classmethod
    def for_agent(cls, agent: AgentDefinition) -> ActGuard:
        """The guard an agent file asks for (``nlu.confirm``)."""
        intents = agent.irreversible_intents()
        chosen = [intent for intent in agent.intents if intent.name in intents]
        confirm = agent.nlu.confirm
        return cls(
            intents=intents,
            ends_call=frozenset(i.name for i in chosen if i.action is IntentAction.END_CALL),
            follow_ups={
                i.name: frozenset(s.entity for s in i.slots if not s.known_from) for i in chosen
            },
            act_threshold=confirm.act_threshold,
            min_margin=confirm.min_margin,
            min_words=confirm.min_words,
        )

    def doubt(self, result: NLUResultFrame, *, requested: bool, asked: bool = False) -> str | None:
        """Why an act-band decision for an irreversible intent must be confirmed, if it must.

        Args:
            result: The decision (its text set).
            requested: The caller has already asked for something on this call.
            asked: The turn answers a question the agent asked (a clarification, or an
                outbound call's opening).
        """
        if result.intent not in self.intents:
            return None
        if result.intent in self.ends_call:
            # Before any request a goodbye is checked; after one, the act band closes the call
            # (a closing "Thank you, goodbye." heard at 0.89 was asked "Did you want to end
            # the call?" in the scenario suite).
            if requested:
                return None
            if not asked:
                return "goodbye before any request"
            # the answer to our question: "stop calling me" is acted on when sure
        if any(not result.entities.get(kind) for kind in self.follow_ups.get(result.intent, ())):
            return None  # the dialogue asks for the slot first
        if result.confidence < self.act_threshold:
            return "confidence below the confirm threshold"
        if result.margin < self.min_margin:
            return "runner-up too close"
        if request_words(result.text) < self.min_words:
            return "a fragment"
        return None
