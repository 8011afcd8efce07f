"""What the campaign store returns: campaigns with their progress, contacts, results.

States of a campaign: ``running``, ``paused``, ``cancelled``, ``completed`` (no contact
left to call). States of a contact: ``pending`` (due at ``next_at``), ``dialing`` (an
attempt is out), ``done`` (final disposition), ``skipped`` (no calling window ever
opens for it), ``cancelled`` (its campaign was cancelled before it was done).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from integrations.outbound.rules import CampaignRules
from integrations.outbound.store import Attempt
from integrations.storage.models import Base, Campaign, CampaignContact
from integrations.storage.queries import iso

RUNNING = "running"
PAUSED = "paused"
CANCELLED = "cancelled"
COMPLETED = "completed"
CAMPAIGN_STATES = (RUNNING, PAUSED, CANCELLED, COMPLETED)

PENDING = "pending"
DIALING = "dialing"
DONE = "done"
SKIPPED = "skipped"
CONTACT_STATES = (PENDING, DIALING, DONE, SKIPPED, CANCELLED)

CAMPAIGNS = Base.metadata.tables[Campaign.__tablename__]
CONTACTS = Base.metadata.tables[CampaignContact.__tablename__]


def naive_utc(moment: datetime) -> datetime:
    """How the tables store time: naive UTC (aware times are converted)."""
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


class CampaignError(ValueError):
    """A campaign request the store refuses (the message says why)."""


class CampaignNotFound(CampaignError):
    """No campaign with that id."""


class CampaignStateError(CampaignError):
    """The campaign is not in a state that allows this (e.g. resuming a cancelled one)."""


@dataclass(frozen=True)
class Progress:
    """How far a campaign is: contacts per state, and per final disposition."""

    total: int = 0
    states: Mapping[str, int] = field(default_factory=dict)
    dispositions: Mapping[str, int] = field(default_factory=dict)
    active_attempts: int = 0

    def count(self, state: str) -> int:
        """Contacts in ``state``."""
        return int(self.states.get(state, 0))

    def as_json(self) -> dict[str, Any]:
        """For the API."""
        return {
            "total": self.total,
            **{state: self.count(state) for state in CONTACT_STATES},
            "active_attempts": self.active_attempts,
            "dispositions": dict(self.dispositions),
        }


@dataclass(frozen=True)
class CampaignInfo:
    """A campaign, its rules and (when asked for) its progress."""

    id: str
    name: str
    agent: str
    state: str
    rules: CampaignRules
    created_at: datetime
    updated_at: datetime
    progress: Progress = field(default_factory=Progress)

    def as_json(self) -> dict[str, Any]:
        """For the API."""
        return {
            "id": self.id,
            "name": self.name,
            "agent": self.agent,
            "state": self.state,
            "rules": self.rules.as_json(),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "progress": self.progress.as_json(),
        }


@dataclass(frozen=True)
class Contact:
    """One contact and where its calls stand (``last_*``: its latest attempt's)."""

    id: str
    campaign_id: str
    line: int | None
    phone: str
    timezone: str
    variables: Mapping[str, str]
    state: str
    attempts: int
    next_at: datetime | None
    disposition: str | None
    last_attempt_id: str | None
    updated_at: datetime
    last_provider_call_id: str | None = None
    last_call_id: str | None = None
    last_dialed_at: datetime | None = None
    last_ended_at: datetime | None = None
    last_error_code: int | None = None

    def as_json(self) -> dict[str, Any]:
        """For the API and the JSON lines export."""
        return {
            "id": self.id,
            "campaign_id": self.campaign_id,
            "line": self.line,
            "phone": self.phone,
            "timezone": self.timezone,
            "variables": dict(self.variables),
            "state": self.state,
            "attempts": self.attempts,
            "disposition": self.disposition,
            "next_at": iso(self.next_at),
            "updated_at": iso(self.updated_at),
            "last_attempt_id": self.last_attempt_id,
            "last_provider_call_id": self.last_provider_call_id,
            "last_call_id": self.last_call_id,
            "last_dialed_at": iso(self.last_dialed_at),
            "last_ended_at": iso(self.last_ended_at),
            "last_error_code": self.last_error_code,
        }


@dataclass(frozen=True)
class DialingCampaign:
    """What the job queue reads of a campaign before each dial (no progress counts).

    Parameters:
        result_webhook_url: Where each attempt's result is POSTed; None for nowhere.
    """

    id: str
    state: str
    max_concurrent: int
    calls_per_second: float
    result_webhook_url: str | None


ClaimOutcome = Literal["claimed", "at-cap", "paced", "refused"]


@dataclass(frozen=True)
class DialClaim:
    """What a capped claim (:meth:`CampaignDialing.claim_dial`) came to.

    Parameters:
        outcome: ``claimed`` (``attempt`` is set), ``at-cap`` (``max_concurrent`` calls in
            flight), ``paced`` (the last dial was less than ``1 / calls_per_second`` ago:
            try again in ``wait_s``) or ``refused`` (not running, not due, taken, outside
            the window, on the do-not-call list).
        attempt: The attempt written, when claimed.
        wait_s: When paced, the seconds until the pace allows the next dial.
    """

    outcome: ClaimOutcome
    attempt: Attempt | None = None
    wait_s: float = 0.0


@dataclass(frozen=True)
class DueContact:
    """A contact whose next attempt is due (for the queue)."""

    contact_id: str
    campaign_id: str
    next_at: datetime


@dataclass(frozen=True)
class ContactResult:
    """Where a contact stands after an attempt ended.

    Parameters:
        final: No further attempt will be made (``disposition`` is the contact's result).
        next_at: When it is due again (``state`` ``pending``), else None.
        changed: False when this attempt's end had already been applied (nothing done).
        attempt_id: The attempt whose end this is.
    """

    contact_id: str
    campaign_id: str
    state: str
    disposition: str | None
    attempts: int
    next_at: datetime | None
    final: bool
    changed: bool = True
    attempt_id: str | None = None
