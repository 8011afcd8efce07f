"""A small campaign store for the queue's tests and bench, on the real call-record tables.

It keeps the runner's contract (:class:`bot.outbound.ports.CampaignRunnerStore`) with the
least rules that exercise it: a UTC hour window, retries by disposition after a delay,
the do-not-call list. The shipped campaign store (``integrations.outbound.campaigns``)
keeps the real rules; this one stands in for it wherever the queue is measured alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, insert, or_, select, update

from integrations.outbound.dispositions import Disposition
from integrations.outbound.store import (
    ATTEMPTS,
    ENDED,
    Attempt,
    OutboundStore,
    e164,
    new_id,
)
from integrations.storage.models import Base, Campaign, CampaignContact
from integrations.storage.records import utcnow

CAMPAIGNS = Base.metadata.tables[Campaign.__tablename__]
CONTACTS = Base.metadata.tables[CampaignContact.__tablename__]


@dataclass(frozen=True)
class SimpleCampaign:
    """A campaign as the runner reads it, with this store's few rules."""

    id: str
    state: str
    max_concurrent: int = 5
    calls_per_second: float = 0.0
    result_webhook_url: str | None = None
    window_hours: tuple[int, int] = (0, 24)
    """Dial only between these UTC hours (start inclusive, end exclusive)."""
    retries: Mapping[str, tuple[int, float]] = field(default_factory=dict)
    """Disposition -> (further attempts, delay in seconds)."""

    def in_window(self, now: datetime) -> bool:
        """Whether ``now`` (naive UTC) is inside the calling window."""
        start, end = self.window_hours
        return start <= now.hour < end


@dataclass(frozen=True)
class ContactState:
    """Where a contact stands after an attempt."""

    state: str
    next_at: datetime | None


@dataclass(frozen=True)
class DueContact:
    """A contact due for a dial."""

    id: str
    campaign_id: str


def _campaign(campaign_id: str, state: str, stored: Mapping[str, Any] | None) -> SimpleCampaign:
    rules = dict(stored or {})
    return SimpleCampaign(
        id=campaign_id,
        state=state,
        max_concurrent=int(rules.get("max_concurrent", 5)),
        calls_per_second=float(rules.get("calls_per_second", 0.0)),
        result_webhook_url=rules.get("result_webhook_url"),
        window_hours=tuple(rules.get("window_hours", (0, 24))),  # type: ignore[arg-type]
        retries={k: (int(v[0]), float(v[1])) for k, v in rules.get("retries", {}).items()},
    )


class SimpleCampaignStore:
    """Campaigns, contacts and claims on ``engine`` (its schema migrated)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.attempts = OutboundStore(engine)

    def create(
        self,
        phones: Sequence[str],
        *,
        agent: str = "reminders",
        state: str = "running",
        **rules: Any,
    ) -> str:
        """A campaign of ``phones``, each due now; returns its id."""
        now = utcnow()
        campaign_id = new_id("cp_")
        rules = {k: list(v) if isinstance(v, tuple) else v for k, v in rules.items()}
        with self.engine.begin() as conn:
            conn.execute(
                insert(CAMPAIGNS).values(
                    id=campaign_id,
                    name="sim",
                    agent=agent,
                    state=state,
                    rules=rules,
                    created_at=now,
                    updated_at=now,
                )
            )
            conn.execute(
                insert(CONTACTS),
                [
                    {
                        "id": new_id("ct_"),
                        "campaign_id": campaign_id,
                        "line": i + 2,
                        "phone": e164(phone),
                        "timezone": "UTC",
                        "variables": {},
                        "state": "pending",
                        "attempts": 0,
                        "next_at": None,
                        "updated_at": now,
                    }
                    for i, phone in enumerate(phones)
                ],
            )
        return campaign_id

    def set_state(self, campaign_id: str, state: str) -> None:
        """Pause, resume (``running``) or cancel."""
        with self.engine.begin() as conn:
            conn.execute(
                update(CAMPAIGNS)
                .where(CAMPAIGNS.c.id == campaign_id)
                .values(state=state, updated_at=utcnow())
            )

    def contacts(self, campaign_id: str) -> list[dict[str, Any]]:
        """Every contact of the campaign, as rows."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(CONTACTS).where(CONTACTS.c.campaign_id == campaign_id))
            return [dict(r._mapping) for r in rows]

    # The runner's contract

    def campaign(self, campaign_id: str) -> SimpleCampaign | None:
        """The campaign (None: unknown)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign_id)).first()
        return _campaign(row.id, row.state, row.rules) if row is not None else None

    def due_contacts(
        self, now: datetime, limit: int, campaign_id: str | None = None
    ) -> list[DueContact]:
        """Pending contacts of running campaigns due at ``now``."""
        query = (
            select(CONTACTS.c.id, CONTACTS.c.campaign_id)
            .join(CAMPAIGNS, CAMPAIGNS.c.id == CONTACTS.c.campaign_id)
            .where(
                CAMPAIGNS.c.state == "running",
                CONTACTS.c.state == "pending",
                or_(CONTACTS.c.next_at.is_(None), CONTACTS.c.next_at <= now),
            )
            .order_by(CONTACTS.c.next_at, CONTACTS.c.line)
            .limit(limit)
        )
        if campaign_id is not None:
            query = query.where(CONTACTS.c.campaign_id == campaign_id)
        with self.engine.connect() as conn:
            return [DueContact(r.id, r.campaign_id) for r in conn.execute(query)]

    def claim_attempt(self, contact_id: str, now: datetime) -> Attempt | None:
        """Re-check and write the contact's next attempt.

        The checks read first; the claim is one guarded update (pending, same attempt
        count) that takes SQLite's write lock before anything else is written, and the
        attempt row goes in the same transaction.
        """
        with self.engine.connect() as conn:
            row = conn.execute(
                select(CONTACTS, CAMPAIGNS.c.state.label("c_state"), CAMPAIGNS.c.rules)
                .join(CAMPAIGNS, CAMPAIGNS.c.id == CONTACTS.c.campaign_id)
                .where(CONTACTS.c.id == contact_id)
            ).first()
        if row is None or row.c_state != "running" or row.state != "pending":
            return None
        if row.next_at is not None and row.next_at > now:
            return None
        rules = _campaign(row.campaign_id, row.c_state, row.rules)
        if not rules.in_window(now) or self.attempts.dnc_contains(row.phone):
            return None
        number = row.attempts + 1
        attempt_id = new_id("at_")
        with self.engine.begin() as conn:
            claimed = conn.execute(
                update(CONTACTS)
                .where(
                    and_(
                        CONTACTS.c.id == contact_id,
                        CONTACTS.c.state == "pending",
                        CONTACTS.c.attempts == row.attempts,
                    )
                )
                .values(
                    state="dialing", attempts=number, last_attempt_id=attempt_id, updated_at=now
                )
            )
            if claimed.rowcount != 1:
                return None
            conn.execute(
                insert(ATTEMPTS).values(
                    id=attempt_id,
                    agent="reminders",
                    to_number=row.phone,
                    variables=dict(row.variables or {}),
                    channel="twilio",
                    campaign_id=row.campaign_id,
                    contact_id=contact_id,
                    number=number,
                    state="created",
                    created_at=utcnow(),
                )
            )
        return self.attempts.attempt(attempt_id)

    def active_attempts(self, campaign_id: str) -> int:
        """Attempts of the campaign not ended."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(ATTEMPTS)
                    .where(ATTEMPTS.c.campaign_id == campaign_id, ATTEMPTS.c.state != ENDED)
                ).scalar_one()
            )

    def attempt_finished(self, attempt: Attempt, now: datetime, retryable: bool) -> ContactState:
        """Retry by disposition, else done (applied once per attempt: a guarded update)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(CONTACTS, CAMPAIGNS.c.rules)
                .join(CAMPAIGNS, CAMPAIGNS.c.id == CONTACTS.c.campaign_id)
                .where(CONTACTS.c.id == attempt.contact_id)
            ).first()
        if row is None:
            return ContactState("unknown", None)
        if row.state != "dialing" or row.last_attempt_id != attempt.id:
            return ContactState(row.state, row.next_at)  # applied already
        further, delay = _campaign(row.campaign_id, "", row.rules).retries.get(
            attempt.disposition or "", (0, 0.0)
        )
        if retryable and row.attempts <= further:
            state, next_at = "pending", now + timedelta(seconds=delay)
        else:
            state, next_at = "done", None
        with self.engine.begin() as conn:
            applied = conn.execute(
                update(CONTACTS)
                .where(
                    CONTACTS.c.id == row.id,
                    CONTACTS.c.state == "dialing",
                    CONTACTS.c.last_attempt_id == attempt.id,
                )
                .values(
                    state=state, next_at=next_at, disposition=attempt.disposition, updated_at=now
                )
            )
        if applied.rowcount != 1:
            return self._state_of(row.id)
        return ContactState(state, next_at)

    def _state_of(self, contact_id: str) -> ContactState:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(CONTACTS.c.state, CONTACTS.c.next_at).where(CONTACTS.c.id == contact_id)
            ).first()
        return ContactState(row.state, row.next_at) if row else ContactState("unknown", None)

    def reconcile_stale(self, older_than: datetime, now: datetime) -> int:
        """End claims never dialled; apply ended attempts whose contact still waits."""
        moved = 0
        for attempt in self.attempts.stale_dials(older_than):
            ended = self.attempts.finish(
                attempt.id, Disposition.FAILED, error="lost with its worker before the dial"
            )
            if ended is not None and ended.contact_id is not None:
                self.attempt_finished(ended, now, True)
                moved += 1
        with self.engine.connect() as conn:
            waiting = conn.execute(
                select(ATTEMPTS.c.id)
                .join(CONTACTS, CONTACTS.c.last_attempt_id == ATTEMPTS.c.id)
                .where(
                    CONTACTS.c.state == "dialing",
                    ATTEMPTS.c.state == ENDED,
                    ATTEMPTS.c.ended_at < older_than,
                )
            ).all()
        for (attempt_id,) in waiting:
            ended = self.attempts.attempt(attempt_id)
            if ended is not None:
                self.attempt_finished(ended, now, True)
                moved += 1
        return moved
