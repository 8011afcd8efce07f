"""What a clarifying question offers: the decision's intent, or it and a close runner-up.

"Did you want to book an appointment?" leaves a caller who meant to cancel with a "no" and
the request to make again; "Did you want to book an appointment, or cancel your
appointment?" lets them pick. The runner-up is offered when it is close to the decision
(within ``runner_up_within`` of its confidence) and is one of the agent's own requests (not
a yes, a no or out of scope). A caller who then names one of the offered intents has chosen
it: the dialogue acts on it (:class:`~processors.dialogue.DialoguePolicy`).
"""

from __future__ import annotations

from dataclasses import dataclass

from processors.agent_definition import AgentDefinition
from processors.frames import OUT_OF_SCOPE, Band, NLUResultFrame
from processors.nlu_readings import ANSWERS

NOT_OFFERED = ANSWERS | {OUT_OF_SCOPE}
"""Intents never offered as a choice: a yes, a no, out of scope."""


@dataclass(frozen=True)
class ClarifyChoice:
    """Which intents a clarifying question offers the caller.

    Parameters:
        runner_up_within: The runner-up is offered too when the decision's confidence leads
            it by less than this (0: never; the decision's intent alone).
        known: The agent's intents (a runner-up the agent does not have is not offered).
    """

    runner_up_within: float = 0.0
    known: frozenset[str] = frozenset()

    @classmethod
    def for_agent(cls, agent: AgentDefinition) -> ClarifyChoice:
        """The choice an agent file asks for (``nlu.clarify_runner_up_within``)."""
        return cls(agent.nlu.clarify_runner_up_within, frozenset(i.name for i in agent.intents))

    def offered(self, nlu: NLUResultFrame) -> tuple[str, ...]:
        """The intents a clarifying question on ``nlu`` offers, the decision's first.

        Only for a clarify-band decision; any other decision offers its own intent alone.
        """
        second = nlu.runner_up
        if (
            nlu.band is not Band.CLARIFY
            or second is None
            or second == nlu.intent
            or second in NOT_OFFERED
            or nlu.intent in NOT_OFFERED
            or second not in self.known
            or nlu.margin >= self.runner_up_within
        ):
            return (nlu.intent,)
        return (nlu.intent, second)
