"""Outbound dial attempts and the do-not-call list, in the call-record database.

One attempt is one dial. It is written before the dial is placed and is placed at most
once: a campaign contact's attempt numbers are unique (the database refuses a second
attempt 2 for the same contact), and only the caller that moves an attempt from
``created`` to ``dialing`` places it (:meth:`OutboundStore.claim_dial`). The provider's
callbacks and the call itself find the attempt by its id or the provider's call id.

Phone numbers and contact variables are personal data: they live in these rows (the
dialler needs them) and never in log messages.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from integrations.crm.base import normalize_phone
from integrations.outbound.dispositions import Disposition
from integrations.storage.models import Base, DoNotCall, OutboundAttempt
from integrations.storage.records import utcnow

ATTEMPTS = Base.metadata.tables[OutboundAttempt.__tablename__]
DNC = Base.metadata.tables[DoNotCall.__tablename__]

CREATED = "created"
DIALING = "dialing"
RINGING = "ringing"
IN_PROGRESS = "in-progress"
ENDED = "ended"
ATTEMPT_STATES = (CREATED, DIALING, RINGING, IN_PROGRESS, ENDED)
DNC_SOURCES = ("spoken", "keypad", "api", "cli", "import")


class OutboundStoreError(ValueError):
    """A request the store refuses (the message names what and why, never a number)."""


class DuplicateAttemptError(OutboundStoreError):
    """That attempt at that contact already exists: it is never made twice."""


def new_id(prefix: str) -> str:
    """A random id with a readable prefix (``at_``, ``cp_``, ``ct_``)."""
    return f"{prefix}{secrets.token_hex(10)}"


@dataclass(frozen=True)
class Attempt:
    """One dial and what came of it (see :class:`integrations.storage.models.OutboundAttempt`)."""

    id: str
    agent: str
    to: str
    variables: Mapping[str, str] = field(default_factory=dict)
    channel: str = "twilio"
    campaign_id: str | None = None
    contact_id: str | None = None
    number: int = 1
    state: str = CREATED
    provider_call_id: str | None = None
    call_id: str | None = None
    answered_by: str | None = None
    disposition: str | None = None
    error_code: int | None = None
    error: str | None = None
    created_at: datetime | None = None
    dialed_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def ended(self) -> bool:
        """Whether the attempt is over (its disposition is final)."""
        return self.state == ENDED

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (times as ISO text)."""
        values: dict[str, Any] = {
            k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()
        }
        values["variables"] = dict(self.variables)
        return values


def _attempt(row: Any) -> Attempt:
    m = row._mapping
    return Attempt(
        id=m["id"],
        agent=m["agent"],
        to=m["to_number"],
        variables=dict(m["variables"] or {}),
        channel=m["channel"],
        campaign_id=m["campaign_id"],
        contact_id=m["contact_id"],
        number=m["number"],
        state=m["state"],
        provider_call_id=m["provider_call_id"],
        call_id=m["call_id"],
        answered_by=m["answered_by"],
        disposition=m["disposition"],
        error_code=m["error_code"],
        error=m["error"],
        created_at=m["created_at"],
        dialed_at=m["dialed_at"],
        answered_at=m["answered_at"],
        ended_at=m["ended_at"],
    )


@dataclass(frozen=True)
class DoNotCallEntry:
    """A number on the do-not-call list."""

    phone: str
    source: str
    added_at: datetime


def e164(phone: str) -> str:
    """The E.164 form of ``phone``.

    Raises:
        OutboundStoreError: It is not a phone number.
    """
    normalized = normalize_phone(phone)
    if normalized is None:
        raise OutboundStoreError("not a phone number (give it in E.164, e.g. +15555550123)")
    return normalized


class OutboundStore:
    """Attempts and the do-not-call list on the call-record engine (SQLite or PostgreSQL).

    Synchronous: call it from a thread (``asyncio.to_thread``) inside the event loop.
    """

    def __init__(self, engine: Engine):
        """Use ``engine`` (its schema migrated to head by the call store)."""
        self.engine = engine

    # Attempts

    def new_attempt(
        self,
        *,
        agent: str,
        to: str,
        variables: Mapping[str, str] | None = None,
        channel: str = "twilio",
        campaign_id: str | None = None,
        contact_id: str | None = None,
        number: int = 1,
        worker_id: str | None = None,
    ) -> Attempt:
        """Write an attempt before it is dialled.

        Raises:
            OutboundStoreError: ``to`` is not a phone number (browser calls take any id).
            DuplicateAttemptError: This contact already has attempt ``number``.
        """
        to = e164(to) if channel != "browser" else to
        attempt_id = new_id("at_")
        values = {
            "id": attempt_id,
            "agent": agent,
            "to_number": to,
            "variables": dict(variables or {}),
            "channel": channel,
            "campaign_id": campaign_id,
            "contact_id": contact_id,
            "number": number,
            "state": CREATED,
            "worker_id": worker_id,
            "created_at": utcnow(),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(ATTEMPTS).values(**values))
        except IntegrityError as e:
            raise DuplicateAttemptError(f"contact {contact_id} already has attempt {number}") from e
        found = self.attempt(attempt_id)
        assert found is not None
        return found

    def attempt(self, attempt_id: str) -> Attempt | None:
        """The attempt with this id."""
        with self.engine.connect() as conn:
            row = conn.execute(select(ATTEMPTS).where(ATTEMPTS.c.id == attempt_id)).first()
        return _attempt(row) if row is not None else None

    def attempt_by_provider_id(self, provider_call_id: str) -> Attempt | None:
        """The attempt the provider knows as ``provider_call_id`` (Twilio ``CallSid``)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(ATTEMPTS).where(ATTEMPTS.c.provider_call_id == provider_call_id)
            ).first()
        return _attempt(row) if row is not None else None

    def attempts(
        self, *, campaign_id: str | None = None, contact_id: str | None = None, limit: int = 1000
    ) -> list[Attempt]:
        """Attempts, newest first, of a campaign or a contact (or all)."""
        query = select(ATTEMPTS).order_by(ATTEMPTS.c.created_at.desc()).limit(limit)
        if campaign_id is not None:
            query = query.where(ATTEMPTS.c.campaign_id == campaign_id)
        if contact_id is not None:
            query = query.where(ATTEMPTS.c.contact_id == contact_id)
        with self.engine.connect() as conn:
            return [_attempt(row) for row in conn.execute(query)]

    def claim_dial(self, attempt_id: str) -> bool:
        """Move a ``created`` attempt to ``dialing``; True for the one caller that may dial it.

        A crash after this and before :meth:`mark_dialed` leaves the attempt ``dialing``
        without a provider id: it is never dialled again (see :meth:`stale_dials`).
        """
        with self.engine.begin() as conn:
            result = conn.execute(
                update(ATTEMPTS)
                .where(and_(ATTEMPTS.c.id == attempt_id, ATTEMPTS.c.state == CREATED))
                .values(state=DIALING, dialed_at=utcnow())
            )
        return result.rowcount == 1

    def mark_dialed(self, attempt_id: str, provider_call_id: str) -> None:
        """The provider accepted the dial and named the call."""
        self._update(attempt_id, provider_call_id=provider_call_id)

    def mark_status(
        self, attempt_id: str, state: str, *, answered_by: str | None = None
    ) -> Attempt | None:
        """A progress state from the provider (``ringing``, ``in-progress``); ended stays ended."""
        if state not in (RINGING, IN_PROGRESS):
            raise OutboundStoreError(f"unknown progress state {state!r} (ringing, in-progress)")
        values: dict[str, Any] = {"state": state}
        if state == IN_PROGRESS:
            values["answered_at"] = utcnow()
        if answered_by:
            values["answered_by"] = answered_by[:32]
        with self.engine.begin() as conn:
            conn.execute(
                update(ATTEMPTS)
                .where(and_(ATTEMPTS.c.id == attempt_id, ATTEMPTS.c.state != ENDED))
                .values(**values)
            )
        return self.attempt(attempt_id)

    def set_answered_by(self, attempt_id: str, answered_by: str) -> None:
        """The provider's machine-detection verdict (it may arrive after the answer)."""
        self._update(attempt_id, answered_by=answered_by[:32])

    def link_call(self, attempt_id: str, call_id: str) -> None:
        """The call record of the answered attempt."""
        self._update(attempt_id, call_id=call_id)

    def record_outcome(self, attempt_id: str, disposition: Disposition | str) -> None:
        """What the call came to, decided during the call (the last one decided counts)."""
        Disposition(disposition)  # a known disposition or ValueError
        with self.engine.begin() as conn:
            conn.execute(
                update(ATTEMPTS)
                .where(and_(ATTEMPTS.c.id == attempt_id, ATTEMPTS.c.state != ENDED))
                .values(disposition=str(disposition))
            )

    def finish(
        self,
        attempt_id: str,
        fallback: Disposition | str,
        *,
        error_code: int | None = None,
        error: str | None = None,
    ) -> Attempt | None:
        """End the attempt; its disposition is the one decided in the call, else ``fallback``.

        Only the first finish counts (a status callback repeated, or arriving after the
        call's own end, changes nothing). Returns the attempt as ended, or None if unknown.
        """
        self.end(attempt_id, fallback, error_code=error_code, error=error)
        return self.attempt(attempt_id)

    def end(
        self,
        attempt_id: str,
        fallback: Disposition | str,
        *,
        error_code: int | None = None,
        error: str | None = None,
    ) -> bool:
        """End the attempt as :meth:`finish` does; whether this call ended it.

        Of finishes racing in several processes exactly one gets True: the update is
        conditional on the attempt being open.
        """
        Disposition(fallback)
        with self.engine.begin() as conn:
            ended = conn.execute(
                update(ATTEMPTS)
                .where(and_(ATTEMPTS.c.id == attempt_id, ATTEMPTS.c.state != ENDED))
                .values(
                    state=ENDED,
                    ended_at=utcnow(),
                    disposition=func.coalesce(ATTEMPTS.c.disposition, str(fallback)),
                    error_code=error_code,
                    error=(error or None) and error[:200],
                )
            )
        return ended.rowcount == 1

    def stale_dials(self, older_than: datetime) -> list[Attempt]:
        """Attempts claimed for dialling before ``older_than`` that the provider never named.

        Their dialler died between the claim and the provider's answer: whether the dial
        went out is unknown, so they are never dialled again (the campaign moves on to
        the next attempt number, see ``integrations.outbound.campaigns``).
        """
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ATTEMPTS).where(
                    and_(
                        ATTEMPTS.c.state.in_((CREATED, DIALING)),
                        ATTEMPTS.c.provider_call_id.is_(None),
                        ATTEMPTS.c.created_at < older_than,
                    )
                )
            )
            return [_attempt(row) for row in rows]

    def _update(self, attempt_id: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(ATTEMPTS).where(ATTEMPTS.c.id == attempt_id).values(**values))

    # The do-not-call list

    def dnc_add(self, phone: str, source: str) -> bool:
        """Put a number on the list; True if it was not on it already."""
        if source not in DNC_SOURCES:
            raise OutboundStoreError(f"unknown do-not-call source {source!r} ({DNC_SOURCES})")
        number = e164(phone)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(DNC).values(phone=number, source=source, added_at=utcnow()))
        except IntegrityError:
            return False
        return True

    def dnc_add_many(self, phones: list[str], source: str) -> tuple[int, list[int]]:
        """Add several numbers; returns (added, indexes of the entries that are not numbers)."""
        added = 0
        bad: list[int] = []
        for i, phone in enumerate(phones):
            try:
                added += self.dnc_add(phone, source)
            except OutboundStoreError:
                bad.append(i)
        return added, bad

    def dnc_remove(self, phone: str) -> bool:
        """Take a number off the list; True if it was on it."""
        with self.engine.begin() as conn:
            result = conn.execute(delete(DNC).where(DNC.c.phone == e164(phone)))
        return result.rowcount > 0

    def dnc_contains(self, phone: str) -> bool:
        """Whether the number is on the list (a string that is no number is not)."""
        number = normalize_phone(phone)
        if number is None:
            return False
        with self.engine.connect() as conn:
            return (
                conn.execute(select(DNC.c.phone).where(DNC.c.phone == number)).first() is not None
            )

    def dnc_list(self, *, limit: int = 1000, offset: int = 0) -> list[DoNotCallEntry]:
        """The list, newest first."""
        query = select(DNC).order_by(DNC.c.added_at.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return [DoNotCallEntry(r.phone, r.source, r.added_at) for r in conn.execute(query)]

    def dnc_count(self) -> int:
        """How many numbers are on the list."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(DNC)).scalar_one())
