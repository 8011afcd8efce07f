"""What the campaign runner needs from the campaign store and the dialler (narrow protocols).

The campaign rules (calling windows, time zones, holidays, retries, the do-not-call
check) live in the campaign store; placing a call lives in the dialler. The runner
only decides when to ask them, on the job queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from integrations.outbound.campaign_types import DialClaim
from integrations.outbound.store import Attempt

RUNNING = "running"
PENDING = "pending"


class RunnerCampaign(Protocol):
    """What the runner reads of a campaign."""

    @property
    def id(self) -> str:
        """The campaign id."""
        ...

    @property
    def state(self) -> str:
        """``running``, ``paused``, ``cancelled`` or ``completed``."""
        ...

    @property
    def max_concurrent(self) -> int:
        """Calls of this campaign in flight at once, at most."""
        ...

    @property
    def calls_per_second(self) -> float:
        """Dials started per second, at most."""
        ...

    @property
    def result_webhook_url(self) -> str | None:
        """Where each attempt's result is POSTed (None: nowhere)."""
        ...


class RunnerContact(Protocol):
    """A contact due for a dial."""

    @property
    def contact_id(self) -> str:
        """The contact id."""
        ...

    @property
    def campaign_id(self) -> str:
        """Its campaign."""
        ...


class AttemptResult(Protocol):
    """Where a contact stands after an attempt ended (the campaign's retry rules applied)."""

    @property
    def attempt_id(self) -> str | None:
        """The attempt that ended."""
        ...

    @property
    def contact_id(self) -> str:
        """Its contact."""
        ...

    @property
    def campaign_id(self) -> str:
        """Its campaign."""
        ...

    @property
    def state(self) -> str:
        """``pending`` (dialled again at ``next_at``) or a final state (``done``, ...)."""
        ...

    @property
    def next_at(self) -> datetime | None:
        """When the next attempt is due (naive UTC), for a pending contact."""
        ...


class CampaignRunnerStore(Protocol):
    """The campaign store, as the runner uses it (``integrations.outbound.campaigns``).

    Times are naive UTC datetimes, as the call records keep them.
    """

    def dialing_campaign(self, campaign_id: str) -> RunnerCampaign | None:
        """The campaign's state and limits (None: unknown); read before every dial, so cheap."""
        ...

    def due_contacts(
        self, now: datetime, limit: int, campaign_id: str | None = None
    ) -> Sequence[RunnerContact]:
        """Pending contacts of running campaigns due at ``now`` (of one campaign, if given)."""
        ...

    def claim_dial(self, contact_id: str, campaign_id: str, now: datetime) -> DialClaim:
        """In one transaction: the campaign's caps, then the contact's claim.

        ``at-cap`` at ``max_concurrent`` calls in flight, ``paced`` (with the wait) within
        ``1 / calls_per_second`` of the last dial, ``refused`` when it must not be dialled
        now (not running, not pending, not due, outside its window, on the do-not-call
        list), else ``claimed`` with the attempt written. Exact across processes: claims
        of one campaign are serialised by the database. The attempt number is unique per
        contact, so a second claim of the same attempt fails.
        """
        ...

    def active_attempts(self, campaign_id: str) -> int:
        """Attempts of the campaign not ended yet (claimed, dialling, ringing, in a call)."""
        ...

    def attempt_finished(self, attempt: Attempt, now: datetime, retryable: bool) -> AttemptResult:
        """Apply the retry rules to an ended attempt (idempotent per attempt)."""
        ...

    def reconcile_stale(self, older_than: datetime, now: datetime) -> Sequence[AttemptResult]:
        """Repair what dead workers left before ``older_than``.

        Ends claims never dialled (never dialled again) and applies the retry rules to
        attempts that ended without their end being applied. Returns one result per
        attempt it applied.
        """
        ...


class AttemptPlacer(Protocol):
    """Places an attempt (Twilio ``calls.create``, or the browser).

    ``place`` claims the attempt first (``OutboundStore.claim_dial``) so it is placed at
    most once, and raises :class:`bot.outbound.dialer.DialError` when the provider refuses
    it. The call's end reaches the runner later, through ``attempt_ended``.
    """

    async def place(self, attempt: Attempt) -> None:
        """Place ``attempt`` (at most once), or raise :class:`bot.outbound.dialer.DialError`."""
        ...
