"""What the dialogue does differently on a call the agent placed.

The opening is the agent's ``outbound.opening`` filled with the contact's variables (and
the callee's CRM fields); a plain "yes" or "no" to it means the agent's ``yes_intent`` or
gets its ``no_reply``. When the dialogue acts on an intent listed under
``outbound.outcomes`` (after any verification and confirmation), an
:class:`~processors.frames.OutcomeFrame` goes downstream; an opt-out intent also pushes a
:class:`~processors.frames.DoNotCallFrame` (the dialer's store puts the number on the
do-not-call list) and its reply ends the call. Nothing here logs the variables' values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from loguru import logger
from pipecat.frames.frames import Frame

from integrations.outbound.dispositions import Disposition
from processors.frames import DoNotCallFrame, OutcomeFrame
from processors.outbound_config import MissingVariablesError, OutboundConfig

SPOKEN_OPT_OUT = "spoken"


@dataclass(frozen=True)
class OutboundScript:
    """An outbound call's opening, outcomes and opt-outs.

    Parameters:
        config: The agent's outbound section.
        variables: The contact's variables for this call (never logged).
    """

    config: OutboundConfig
    variables: Mapping[str, str] = field(default_factory=dict)

    def opening(self, caller: Mapping[str, str], fallback: str) -> str:
        """The rendered opening (``fallback``, the agent's greeting, when it cannot be filled).

        Args:
            caller: The callee's CRM fields (empty when unknown).
            fallback: Said when the agent has no opening or a placeholder has no value.
        """
        if not self.config.opening:
            return fallback
        try:
            return self.config.render_opening(self.variables, caller)
        except MissingVariablesError as e:
            logger.warning(
                f"outbound opening: no value for {', '.join(sorted(e.missing))}; "
                "saying the agent's greeting instead"
            )
            return fallback

    def known(self, caller: Mapping[str, str]) -> dict[str, str]:
        """Template fields for replies: the CRM's, then the contact's variables over them."""
        given = {k: str(v) for k, v in self.variables.items() if str(v).strip()}
        return {**caller, **given}

    def frames_for(self, intent: str) -> list[Frame]:
        """What acting on ``intent`` records: an outcome, and a do-not-call request."""
        if intent in self.config.opt_out_intents:
            logger.info(f"callee opted out ({intent}); asking for the do-not-call list")
            return [
                DoNotCallFrame(reason=SPOKEN_OPT_OUT),
                OutcomeFrame(disposition=Disposition.OPTED_OUT.value, intent=intent),
            ]
        disposition = self.config.outcomes.get(intent)
        if disposition is None:
            return []
        logger.info(f"outbound outcome {disposition.value} ({intent})")
        return [OutcomeFrame(disposition=disposition.value, intent=intent)]
