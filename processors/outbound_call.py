"""What an outbound call is: who is called, for which attempt, with which contact variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class OutboundCall:
    """One outbound call the agent placed.

    Parameters:
        attempt_id: The dial attempt (``integrations.outbound.store``); the provider's
            callbacks and the call record find it by this id.
        to: The number called (never logged).
        variables: The contact's per-call variables (``first_name``, ``appointment``...),
            used by the agent's opening and voicemail lines (never logged).
        campaign_id: The campaign it belongs to (None: a single call).
        contact_id: The campaign contact (None: a single call).
        attempt: Which attempt at this contact (1 = the first).
        answered_by: The provider's answering-machine verdict when the call was answered
            (Twilio ``AnsweredBy``), if it sent one.
    """

    attempt_id: str
    to: str
    variables: Mapping[str, str] = field(default_factory=dict)
    campaign_id: str | None = None
    contact_id: str | None = None
    attempt: int = 1
    answered_by: str | None = None
