"""An agent file's ``nlu`` section: the thresholds that band a decision, and what is confirmed.

Read by :mod:`processors.agent_definition` (``AgentDefinition.nlu``); the router's bands
come from :class:`integrations.nlu.base.NLUThresholds`, the confirmations from
:class:`processors.act_guard.ActGuard`.
"""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Self

from pydantic import BeforeValidator, Field, StrictBool, model_validator
from pydantic.dataclasses import dataclass

from integrations.nlu.base import NLUThresholds
from processors.definition_values import VALUE_CONFIG, Text, switch


@dataclass(frozen=True, config=VALUE_CONFIG)
class ConfirmConfig:
    """When an irreversible intent is confirmed with the caller instead of acted on.

    An intent listed here (booking, moving or cancelling an appointment, ending the call,
    a transfer) is acted on only on a confident reading of a whole request; otherwise the
    agent asks ("Did you want to cancel your appointment?"). A slot the agent still has to
    ask for (e.g. the day) is a confirmation step of its own.
    """

    enabled: StrictBool = True
    intents: tuple[Text, ...] | None = None
    """The irreversible intents; by default those that end the call, transfer, write to the
    CRM or fill slots, except the escalation's ``out_of_scope`` ones (a person takes those)."""
    act_threshold: Annotated[float, Field(ge=0, le=1)] = 0.93
    """Lowest confidence that acts on one of them without asking."""
    min_margin: Annotated[float, Field(ge=0, le=1)] = 0.5
    """Lowest lead over the runner-up intent that acts without asking."""
    min_words: Annotated[int, Field(ge=0)] = 2
    """Fewer words than this (fillers and greetings not counted) is a fragment: ask."""


@dataclass(frozen=True, config=VALUE_CONFIG)
class NLUConfig:
    """Per-agent NLU thresholds (defaults documented in the reference agent)."""

    act_threshold: float = 0.85
    clarify_threshold: float = 0.5
    llm_timeout_secs: float = 1.5
    clear_act_threshold: Annotated[float | None, Field(ge=0, le=1)] = None
    """Lowest confidence that acts on words the recogniser heard clearly, for a question the
    agent only answers (``ActGuard.acts_heard_clearly``); None: ``act_threshold`` alone."""
    turn_end_threshold: Annotated[float, Field(ge=0, le=1)] = 0.85
    """A turn ends early on the words alone (no wait for a pause) only when the classifier
    is at least this sure of them, however low ``act_threshold`` is: an eager turn end cuts
    off a caller whose first sentence merely reads like a request."""
    clarify_runner_up_within: Annotated[float, Field(ge=0, le=1)] = 0.5
    """A clarifying question offers the runner-up intent too when the decision leads it by
    less than this ("Did you want to book an appointment, or cancel your appointment?"); 0:
    the decision's intent alone (:class:`processors.clarify_choice.ClarifyChoice`)."""
    confirm: Annotated[ConfirmConfig, BeforeValidator(switch)] = field(
        default_factory=ConfirmConfig
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not 0 <= self.clarify_threshold <= self.act_threshold <= 1:
            raise ValueError("need 0 <= clarify_threshold <= act_threshold <= 1")
        clear = self.clear_act_threshold
        if clear is not None and not self.clarify_threshold <= clear <= self.act_threshold:
            raise ValueError("need clarify_threshold <= clear_act_threshold <= act_threshold")
        return self

    def thresholds(
        self,
        *,
        act: float | None = None,
        clarify: float | None = None,
        clear_act: float | None = None,
    ) -> NLUThresholds:
        """The router's bands from these settings, each overridable (the benches' flags).

        A clear-act bar an override leaves outside ``clarify``..``act`` is dropped (an
        ``act`` below it leaves it nothing to do).
        """
        act = self.act_threshold if act is None else act
        clarify = self.clarify_threshold if clarify is None else clarify
        clear = self.clear_act_threshold if clear_act is None else clear_act
        clear = clear if clear is not None and clarify <= clear <= act else None
        return NLUThresholds(act=act, clarify=clarify, clear_act=clear)
