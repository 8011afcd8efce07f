"""Campaigns: an agent calling a list of contacts under its rules, on the call-record database.

:class:`CampaignStore` creates campaigns (from CSV text or rows: the good rows imported,
each bad one named by line and reason, see :mod:`integrations.outbound.contacts_csv`),
lists them with their progress, shows their contacts and results, and pauses, resumes
and cancels them. Its queue side (due contacts, claiming a dial, applying retries,
stale dials) is :class:`integrations.outbound.campaign_dialing.CampaignDialing`.

Pausing stops new dials (calls in progress finish); resuming lets them start again;
cancelling turns every pending contact ``cancelled`` (calls in progress finish, and are
not retried). Synchronous: call it from a thread inside the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from loguru import logger
from sqlalchemy import func, insert, select, update

from integrations.outbound.campaign_dialing import CampaignDialing
from integrations.outbound.campaign_types import (
    CAMPAIGNS,
    CANCELLED,
    CONTACT_STATES,
    CONTACTS,
    DONE,
    PAUSED,
    PENDING,
    RUNNING,
    CampaignError,
    CampaignInfo,
    CampaignNotFound,
    CampaignStateError,
    Contact,
    Progress,
    naive_utc,
)
from integrations.outbound.contacts_csv import ContactRow, Problem, check_rows, parse_contacts_csv
from integrations.outbound.rules import CampaignRules
from integrations.outbound.store import ATTEMPTS, new_id
from integrations.storage.records import utcnow

MAX_NAME_CHARS = 200
_CHUNK = 1000
_VERBS = {PAUSED: "paused", RUNNING: "resumed", CANCELLED: "cancelled"}


class CampaignStore(CampaignDialing):
    """Campaigns, their contacts and results (see the module's docstring)."""

    # Creating

    def create(
        self,
        name: str,
        rules: CampaignRules,
        rows: Sequence[ContactRow],
        *,
        now: datetime | None = None,
    ) -> CampaignInfo:
        """A running campaign calling ``rows`` (every contact due from ``now``).

        Raises:
            CampaignError: No contacts, or a name that is too long.
        """
        if not rows:
            raise CampaignError("no contact to call: every row was refused (see the problems)")
        if len(name) > MAX_NAME_CHARS:
            raise CampaignError(f"name: at most {MAX_NAME_CHARS} characters")
        now = naive_utc(now or utcnow())
        campaign_id = new_id("cp_")
        with self.engine.begin() as conn:
            conn.execute(
                insert(CAMPAIGNS).values(
                    id=campaign_id,
                    name=name.strip() or f"{rules.agent} {now:%Y-%m-%d %H:%M}",
                    agent=rules.agent,
                    state=RUNNING,
                    rules=rules.as_json(),
                    created_at=now,
                    updated_at=now,
                )
            )
            for start in range(0, len(rows), _CHUNK):
                conn.execute(
                    insert(CONTACTS),
                    [
                        _contact_values(campaign_id, row, now)
                        for row in rows[start : start + _CHUNK]
                    ],
                )
        self._rules[campaign_id] = rules
        logger.info(f"campaign {campaign_id}: created with {len(rows)} contacts ({rules.agent})")
        return self.campaign(campaign_id)

    def create_from_csv(
        self,
        name: str,
        rules: CampaignRules,
        text: str,
        *,
        required: Sequence[str] = (),
        now: datetime | None = None,
    ) -> tuple[CampaignInfo, list[Problem]]:
        """Create from CSV text; returns the campaign and the rows refused.

        Raises:
            ContactsError: The file as a whole cannot be read.
            CampaignError: No row could be imported.
        """
        rows, problems = parse_contacts_csv(
            text,
            required=required,
            default_timezone=rules.timezone,
            on_dnc=self.outbound.dnc_contains,
        )
        return self._created(name, rules, rows, problems, now)

    def create_from_rows(
        self,
        name: str,
        rules: CampaignRules,
        rows: Sequence[Mapping[str, object]],
        *,
        required: Sequence[str] = (),
        now: datetime | None = None,
    ) -> tuple[CampaignInfo, list[Problem]]:
        """Create from rows (``{"phone": ..., "timezone": ..., variables...}``); row N is line N."""
        good, problems = check_rows(
            enumerate(rows, start=1),
            required=required,
            default_timezone=rules.timezone,
            on_dnc=self.outbound.dnc_contains,
        )
        return self._created(name, rules, good, problems, now)

    def _created(
        self,
        name: str,
        rules: CampaignRules,
        rows: list[ContactRow],
        problems: list[Problem],
        now: datetime | None,
    ) -> tuple[CampaignInfo, list[Problem]]:
        if not rows:
            raise CampaignError(
                f"no contact to call: all {len(problems)} rows were refused"
                + (f" (line {problems[0].line}: {problems[0].reason}...)" if problems else "")
            )
        return self.create(name, rules, rows, now=now), problems

    # Reading

    def campaign(self, campaign_id: str) -> CampaignInfo:
        """One campaign with its progress.

        Raises:
            CampaignNotFound: No such campaign.
        """
        with self.engine.connect() as conn:
            row = conn.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign_id)).first()
        if row is None:
            raise CampaignNotFound(f"no campaign {campaign_id}")
        return self._info(row, self.progress(campaign_id))

    def campaigns(self, *, state: str | None = None, limit: int = 100) -> list[CampaignInfo]:
        """Campaigns, newest first, with their progress."""
        query = select(CAMPAIGNS).order_by(CAMPAIGNS.c.created_at.desc()).limit(limit)
        if state is not None:
            query = query.where(CAMPAIGNS.c.state == state)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
        return [self._info(row, self.progress(row.id)) for row in rows]

    def progress(self, campaign_id: str) -> Progress:
        """Contacts per state and per final disposition, and attempts in flight."""
        with self.engine.connect() as conn:
            by_state = conn.execute(
                select(CONTACTS.c.state, CONTACTS.c.disposition, func.count())
                .where(CONTACTS.c.campaign_id == campaign_id)
                .group_by(CONTACTS.c.state, CONTACTS.c.disposition)
            ).all()
        states: dict[str, int] = dict.fromkeys(CONTACT_STATES, 0)
        dispositions: dict[str, int] = {}
        for state, disposition, count in by_state:
            states[state] = states.get(state, 0) + count
            if state == DONE and disposition:
                dispositions[disposition] = dispositions.get(disposition, 0) + count
        return Progress(
            total=sum(states.values()),
            states=states,
            dispositions=dict(sorted(dispositions.items())),
            active_attempts=self.active_attempts(campaign_id),
        )

    def contacts(
        self,
        campaign_id: str,
        *,
        state: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Contact]:
        """A page of the campaign's contacts (file order) with their latest attempt's result."""
        self.campaign_exists(campaign_id)
        query = self._contacts_query(campaign_id).limit(limit).offset(offset)
        if state is not None:
            query = query.where(CONTACTS.c.state == state)
        with self.engine.connect() as conn:
            return [_contact(row) for row in conn.execute(query)]

    def iter_contacts(self, campaign_id: str) -> Iterator[Contact]:
        """Every contact of the campaign, in pages (for exports)."""
        self.campaign_exists(campaign_id)
        offset = 0
        while True:
            query = self._contacts_query(campaign_id).limit(_CHUNK).offset(offset)
            with self.engine.connect() as conn:
                page = [_contact(row) for row in conn.execute(query)]
            yield from page
            if len(page) < _CHUNK:
                return
            offset += _CHUNK

    def campaign_exists(self, campaign_id: str) -> None:
        """Raises CampaignNotFound unless there is such a campaign."""
        with self.engine.connect() as conn:
            found = conn.execute(select(CAMPAIGNS.c.id).where(CAMPAIGNS.c.id == campaign_id))
            if found.first() is None:
                raise CampaignNotFound(f"no campaign {campaign_id}")

    def _contacts_query(self, campaign_id: str) -> Any:
        last = ATTEMPTS.alias("last_attempt")
        return (
            select(
                CONTACTS,
                last.c.provider_call_id.label("last_provider_call_id"),
                last.c.call_id.label("last_call_id"),
                last.c.dialed_at.label("last_dialed_at"),
                last.c.ended_at.label("last_ended_at"),
                last.c.error_code.label("last_error_code"),
            )
            .outerjoin(last, last.c.id == CONTACTS.c.last_attempt_id)
            .where(CONTACTS.c.campaign_id == campaign_id)
            .order_by(CONTACTS.c.line, CONTACTS.c.id)
        )

    # Pause, resume, cancel

    def pause(self, campaign_id: str, *, now: datetime | None = None) -> CampaignInfo:
        """Stop new dials (calls in progress finish). Pausing a paused campaign is a no-op.

        Raises:
            CampaignNotFound, CampaignStateError: Unknown, or cancelled/completed.
        """
        return self._move(campaign_id, {RUNNING, PAUSED}, PAUSED, now)

    def resume(self, campaign_id: str, *, now: datetime | None = None) -> CampaignInfo:
        """Let dials start again (contacts due meanwhile are called first).

        Raises:
            CampaignNotFound, CampaignStateError: Unknown, or cancelled/completed.
        """
        return self._move(campaign_id, {RUNNING, PAUSED}, RUNNING, now)

    def cancel(self, campaign_id: str, *, now: datetime | None = None) -> CampaignInfo:
        """Cancel: pending contacts become ``cancelled``; calls in progress finish, no retry.

        Raises:
            CampaignNotFound, CampaignStateError: Unknown, or completed.
        """
        info = self._move(campaign_id, {RUNNING, PAUSED, CANCELLED}, CANCELLED, now)
        with self.engine.begin() as conn:
            conn.execute(
                update(CONTACTS)
                .where(CONTACTS.c.campaign_id == campaign_id, CONTACTS.c.state == PENDING)
                .values(state=CANCELLED, next_at=None, updated_at=naive_utc(now or utcnow()))
            )
        return self.campaign(info.id)

    def _move(
        self, campaign_id: str, allowed: set[str], target: str, now: datetime | None
    ) -> CampaignInfo:
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(CAMPAIGNS)
                .where(CAMPAIGNS.c.id == campaign_id, CAMPAIGNS.c.state.in_(allowed))
                .values(state=target, updated_at=naive_utc(now or utcnow()))
            )
        info = self.campaign(campaign_id)  # CampaignNotFound when unknown
        if moved.rowcount != 1:
            raise CampaignStateError(
                f"campaign {campaign_id} is {info.state}: it cannot be {_VERBS[target]}"
            )
        logger.info(f"campaign {campaign_id}: {target}")
        return info

    def _info(self, row: Any, progress: Progress) -> CampaignInfo:
        return CampaignInfo(
            id=row.id,
            name=row.name,
            agent=row.agent,
            state=row.state,
            rules=self.rules(row.id),
            created_at=row.created_at,
            updated_at=row.updated_at,
            progress=progress,
        )


def _contact_values(campaign_id: str, row: ContactRow, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id("ct_"),
        "campaign_id": campaign_id,
        "line": row.line,
        "phone": row.phone,
        "timezone": row.timezone,
        "variables": dict(row.variables),
        "state": PENDING,
        "attempts": 0,
        "next_at": now,
        "disposition": None,
        "last_attempt_id": None,
        "updated_at": now,
    }


def _contact(row: Any) -> Contact:
    m = row._mapping
    return Contact(
        id=m["id"],
        campaign_id=m["campaign_id"],
        line=m["line"],
        phone=m["phone"],
        timezone=m["timezone"],
        variables=dict(m["variables"] or {}),
        state=m["state"],
        attempts=m["attempts"],
        next_at=m["next_at"],
        disposition=m["disposition"],
        last_attempt_id=m["last_attempt_id"],
        updated_at=m["updated_at"],
        last_provider_call_id=m["last_provider_call_id"],
        last_call_id=m["last_call_id"],
        last_dialed_at=m["last_dialed_at"],
        last_ended_at=m["last_ended_at"],
        last_error_code=m["last_error_code"],
    )
