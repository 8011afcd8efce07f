"""The campaign store's side for the job queue: which contacts are due, and claiming a dial.

A dial is claimed in ONE transaction (:meth:`CampaignDialing.claim_attempt`; the queue uses
:meth:`CampaignDialing.claim_dial`, which also holds the campaign's concurrency and
calls-per-second caps exactly, across worker processes and hosts): its first
statement moves the contact from ``pending`` to ``dialing`` (so of two claimers exactly
one gets the row: PostgreSQL locks it, SQLite serialises writers), then it checks the
do-not-call list and the calling window, and writes the attempt row with the next
attempt number (unique per contact: a claimer that somehow got that far twice loses on
the constraint). A dial that would fall outside the window or reach a number on the
list is never returned, so it is never placed. Before each dial the queue reads the
campaign's state and limits (:meth:`CampaignDialing.dialing_campaign`, one row).

When an attempt ends (:meth:`CampaignDialing.attempt_finished`) the retry rules decide:
back to ``pending`` at the later of the retry delay and the next window opening, or
``done`` with the final disposition. Attempts claimed but never named by the provider
(the dialler died) are finished as failed, never redialled under the same number, and the
contact gets its next attempt; attempts that ended while their end was never applied (the
worker applying it died) are applied (:meth:`CampaignDialing.reconcile_stale`).

Phone numbers and variables stay in the rows: log lines carry ids only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from loguru import logger
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    Update,
    and_,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from integrations.outbound.campaign_types import (
    CANCELLED,
    COMPLETED,
    DIALING,
    DONE,
    PENDING,
    RUNNING,
    SKIPPED,
    CampaignNotFound,
    ContactResult,
    DialClaim,
    DialingCampaign,
    DueContact,
)
from integrations.outbound.dispositions import Disposition
from integrations.outbound.rules import CampaignRules
from integrations.outbound.store import (
    ATTEMPTS,
    CREATED,
    DNC,
    ENDED,
    IN_PROGRESS,
    RINGING,
    Attempt,
    OutboundStore,
    new_id,
)
from integrations.outbound.store import DIALING as ATTEMPT_DIALING
from integrations.storage.models import Base, Campaign, CampaignContact

CAMPAIGNS = Base.metadata.tables[Campaign.__tablename__]
CONTACTS = Base.metadata.tables[CampaignContact.__tablename__]
ACTIVE_ATTEMPT_STATES = (CREATED, ATTEMPT_DIALING, RINGING, IN_PROGRESS)
DIALLER_LOST = "dialler lost"


def naive_utc(moment: datetime) -> datetime:
    """How the tables store time: naive UTC (aware times are converted)."""
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


class _Held(Exception):
    """A capped claim stopped by a cap (raised inside its transaction to roll it back)."""

    def __init__(self, claim: DialClaim):
        super().__init__(claim.outcome)
        self.claim = claim


class CampaignDialing:
    """The queue's operations on campaigns (see the module's docstring)."""

    def __init__(self, engine: Engine):
        """Use ``engine`` (the call-record engine, schema migrated to head)."""
        self.engine = engine
        self.outbound = OutboundStore(engine)
        self._rules: dict[str, CampaignRules] = {}

    def rules(self, campaign_id: str) -> CampaignRules:
        """A campaign's rules (they do not change after creation, so they are cached).

        Raises:
            CampaignNotFound: No such campaign.
        """
        if campaign_id not in self._rules:
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(CAMPAIGNS.c.agent, CAMPAIGNS.c.rules).where(
                        CAMPAIGNS.c.id == campaign_id
                    )
                ).first()
            if row is None:
                raise CampaignNotFound(f"no campaign {campaign_id}")
            self._rules[campaign_id] = CampaignRules.from_json(row.agent, row.rules)
        return self._rules[campaign_id]

    def dialing_campaign(self, campaign_id: str) -> DialingCampaign | None:
        """The campaign's state and dialling limits (None: no such campaign); one cheap read."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(CAMPAIGNS.c.agent, CAMPAIGNS.c.state, CAMPAIGNS.c.rules).where(
                    CAMPAIGNS.c.id == campaign_id
                )
            ).first()
        if row is None:
            return None
        if campaign_id not in self._rules:
            self._rules[campaign_id] = CampaignRules.from_json(row.agent, row.rules)
        rules = self._rules[campaign_id]
        return DialingCampaign(
            id=campaign_id,
            state=row.state,
            max_concurrent=rules.max_concurrent,
            calls_per_second=rules.calls_per_second,
            result_webhook_url=rules.result_webhook_url or None,
        )

    def due_contacts(
        self, now: datetime, limit: int = 100, campaign_id: str | None = None
    ) -> list[DueContact]:
        """Pending contacts of running campaigns (or of one) due by ``now``, oldest due first."""
        query = (
            select(CONTACTS.c.id, CONTACTS.c.campaign_id, CONTACTS.c.next_at)
            .join(CAMPAIGNS, CAMPAIGNS.c.id == CONTACTS.c.campaign_id)
            .where(
                CAMPAIGNS.c.state == RUNNING,
                CONTACTS.c.state == PENDING,
                CONTACTS.c.next_at <= naive_utc(now),
            )
            .order_by(CONTACTS.c.next_at, CONTACTS.c.line, CONTACTS.c.id)
            .limit(limit)
        )
        if campaign_id is not None:
            query = query.where(CONTACTS.c.campaign_id == campaign_id)
        with self.engine.connect() as conn:
            return [DueContact(r.id, r.campaign_id, r.next_at) for r in conn.execute(query)]

    def active_attempts(self, campaign_id: str) -> int:
        """The campaign's attempts claimed and not ended (created, dialing, ringing, in call)."""
        with self.engine.connect() as conn:
            return int(conn.execute(self._active_query(campaign_id)).scalar_one())

    def _active_query(self, campaign_id: str) -> Select[int]:
        return (
            select(func.count())
            .select_from(ATTEMPTS)
            .where(
                ATTEMPTS.c.campaign_id == campaign_id,
                ATTEMPTS.c.state.in_(ACTIVE_ATTEMPT_STATES),
            )
        )

    def claim_attempt(
        self, contact_id: str, now: datetime, *, worker_id: str | None = None
    ) -> Attempt | None:
        """Claim the contact's next dial, or None when it must not be dialled now.

        None when: the campaign is not running; the contact is not pending or not due;
        the window is closed (``next_at`` moves to its next opening, or the contact is
        skipped when none comes); the number is on the do-not-call list (the contact is
        done, disposition ``do-not-call``); another claimer won.
        """
        now = naive_utc(now)
        try:
            with self.engine.begin() as conn:
                # the first statement writes: it takes the row (and SQLite's write lock)
                taken = conn.execute(self._take(contact_id, now))
                if taken.rowcount != 1:
                    return None
                return self._claimed(conn, contact_id, now, worker_id)
        except IntegrityError:
            logger.info(f"campaign contact {contact_id}: attempt claimed elsewhere")
            return None

    def claim_dial(
        self, contact_id: str, campaign_id: str, now: datetime, *, worker_id: str | None = None
    ) -> DialClaim:
        """Claim the contact's next dial under the campaign's caps, exact across processes.

        :meth:`claim_attempt` with the campaign's ``max_concurrent`` and
        ``calls_per_second`` checked in the same transaction. Its first statement writes
        the campaign's row (a no-op update): PostgreSQL holds that row lock until the
        commit, and SQLite's write lock is the database's, so claimers of one campaign, in
        any thread, process or host, run this one at a time and each sees the attempts
        the previous one committed. (A row lock rather than an advisory lock: the same
        statement works on both databases, it cannot leak past the transaction, and it is
        the row ``pause`` and ``cancel`` write, so a claim never overlaps them.)

        The contact is then taken and checked as :meth:`claim_attempt` does (the
        do-not-call list, the calling window: a closed window moves it to its opening
        whatever the caps), and just before its attempt is written the caps are checked:

        - **concurrency**: the campaign's attempts not ended (as :meth:`active_attempts`);
        - **pace**: the latest attempt's ``created_at`` (the claimers' ``now``): a dial
          less than ``1 / calls_per_second`` after it waits. Times are the claimers'
          clocks, so hosts must keep them in step (NTP); a host running ahead by *s*
          may dial up to *s* early, one behind waits longer.

        At the cap or within the pace the whole transaction rolls back: the contact is due
        as it was.
        """
        now = naive_utc(now)
        rules = self.rules(campaign_id)

        def within_caps(conn: Connection) -> None:
            active = conn.execute(self._active_query(campaign_id)).scalar_one()
            if active >= rules.max_concurrent:
                raise _Held(DialClaim("at-cap"))
            last = conn.execute(
                select(func.max(ATTEMPTS.c.created_at)).where(ATTEMPTS.c.campaign_id == campaign_id)
            ).scalar_one()
            if last is not None:
                wait = 1.0 / rules.calls_per_second - (now - last).total_seconds()
                if wait > 0:
                    raise _Held(DialClaim("paced", wait_s=wait))

        try:
            with self.engine.begin() as conn:
                locked = conn.execute(
                    update(CAMPAIGNS)
                    .where(CAMPAIGNS.c.id == campaign_id, CAMPAIGNS.c.state == RUNNING)
                    .values(state=CAMPAIGNS.c.state)
                )
                if locked.rowcount != 1:
                    return DialClaim("refused")
                taken = conn.execute(self._take(contact_id, now, campaign_id))
                if taken.rowcount != 1:
                    return DialClaim("refused")
                attempt = self._claimed(conn, contact_id, now, worker_id, within_caps)
        except _Held as held:  # rolled back
            return held.claim
        except IntegrityError:
            logger.info(f"campaign contact {contact_id}: attempt claimed elsewhere")
            return DialClaim("refused")
        return DialClaim("claimed", attempt) if attempt is not None else DialClaim("refused")

    def _take(self, contact_id: str, now: datetime, campaign_id: str | None = None) -> Update:
        """Move a due pending contact of a running campaign to ``dialing``."""
        running = select(CAMPAIGNS.c.id).where(CAMPAIGNS.c.state == RUNNING)
        where = [
            CONTACTS.c.id == contact_id,
            CONTACTS.c.state == PENDING,
            CONTACTS.c.next_at <= now,
            CONTACTS.c.campaign_id.in_(running),
        ]
        if campaign_id is not None:
            where.append(CONTACTS.c.campaign_id == campaign_id)
        return (
            update(CONTACTS)
            .where(*where)
            .values(state=DIALING, attempts=CONTACTS.c.attempts + 1, updated_at=now)
        )

    def _claimed(
        self,
        conn: Connection,
        contact_id: str,
        now: datetime,
        worker_id: str | None,
        within_caps: Callable[[Connection], None] | None = None,
    ) -> Attempt | None:
        row = conn.execute(select(CONTACTS).where(CONTACTS.c.id == contact_id)).one()
        rules = self.rules(row.campaign_id)
        back = {"attempts": row.attempts - 1, "updated_at": now}  # undo the claim
        where = CONTACTS.c.id == contact_id
        on_list = conn.execute(select(DNC.c.phone).where(DNC.c.phone == row.phone)).first()
        if on_list is not None:
            conn.execute(
                update(CONTACTS)
                .where(where)
                .values(state=DONE, disposition=Disposition.DO_NOT_CALL.value, next_at=None, **back)
            )
            self._complete_if_done(conn, row.campaign_id, now)
            logger.info(f"campaign contact {contact_id}: on the do-not-call list, not dialled")
            return None
        windows = rules.calling_windows
        if not windows.is_open(now, row.timezone):
            opening = windows.next_open(now, row.timezone)
            if opening is None:
                conn.execute(update(CONTACTS).where(where).values(state=SKIPPED, **back))
                self._complete_if_done(conn, row.campaign_id, now)
                logger.warning(f"campaign contact {contact_id}: no calling window ever opens")
            else:
                conn.execute(
                    update(CONTACTS)
                    .where(where)
                    .values(state=PENDING, next_at=naive_utc(opening), **back)
                )
            return None
        if within_caps is not None:
            within_caps(conn)  # raises to roll the claim back
        attempt_id = new_id("at_")
        values: dict[str, Any] = {
            "id": attempt_id,
            "agent": rules.agent,
            "to_number": row.phone,
            "variables": dict(row.variables or {}),
            "channel": "twilio",
            "campaign_id": row.campaign_id,
            "contact_id": contact_id,
            "number": row.attempts,
            "state": CREATED,
            "worker_id": worker_id,
            "created_at": now,
        }
        conn.execute(insert(ATTEMPTS).values(**values))
        conn.execute(update(CONTACTS).where(where).values(last_attempt_id=attempt_id))
        return Attempt(
            id=attempt_id,
            agent=rules.agent,
            to=row.phone,
            variables=values["variables"],
            campaign_id=row.campaign_id,
            contact_id=contact_id,
            number=row.attempts,
            created_at=now,
        )

    def attempt_finished(self, attempt: Attempt, now: datetime, retryable: bool) -> ContactResult:
        """Apply the retry rules to the contact of an ended attempt (once per attempt).

        The attempt's disposition is read from the database (the one recorded in the call
        wins). Retried: ``pending`` at the later of ``now`` + the delay and the next window
        opening (``cancelled`` instead when the campaign was cancelled meanwhile). Final:
        ``done``. Called again for the same attempt it changes nothing.

        Raises:
            CampaignNotFound: The attempt belongs to no campaign contact.
        """
        if attempt.contact_id is None or attempt.campaign_id is None:
            raise CampaignNotFound(f"attempt {attempt.id} is not a campaign's")
        now = naive_utc(now)
        where = and_(
            CONTACTS.c.id == attempt.contact_id,
            CONTACTS.c.state == DIALING,
            CONTACTS.c.last_attempt_id == attempt.id,
        )
        with self.engine.begin() as conn:
            taken = conn.execute(update(CONTACTS).where(where).values(updated_at=now))
            if taken.rowcount != 1:
                return self._result(conn, attempt.contact_id, attempt.id, changed=False)
            stored = conn.execute(
                select(ATTEMPTS.c.disposition, ATTEMPTS.c.state).where(ATTEMPTS.c.id == attempt.id)
            ).one()
            disposition = stored.disposition or attempt.disposition or Disposition.FAILED.value
            contact = conn.execute(
                select(CONTACTS).where(CONTACTS.c.id == attempt.contact_id)
            ).one()
            campaign_state = conn.execute(
                select(CAMPAIGNS.c.state).where(CAMPAIGNS.c.id == attempt.campaign_id)
            ).scalar_one()
            values = self._after(contact, disposition, retryable, campaign_state, now)
            conn.execute(update(CONTACTS).where(CONTACTS.c.id == contact.id).values(**values))
            if values["state"] != PENDING:
                self._complete_if_done(conn, attempt.campaign_id, now)
            if stored.state != ENDED:
                logger.warning(f"attempt {attempt.id}: contact released before the attempt ended")
            return self._result(conn, attempt.contact_id, attempt.id)

    def _after(
        self, contact: Any, disposition: str, retryable: bool, campaign_state: str, now: datetime
    ) -> dict[str, Any]:
        """The contact's new values after an attempt that came to ``disposition``."""
        rules = self.rules(contact.campaign_id)
        decision = rules.retries.decide(disposition, contact.attempts, retryable)
        final = {"state": DONE, "disposition": disposition, "next_at": None}
        if decision.final:
            return final
        if campaign_state == CANCELLED:
            return {**final, "state": CANCELLED}
        opening = rules.calling_windows.next_open(now + decision.delay, contact.timezone)
        if opening is None:
            return {**final, "state": SKIPPED}
        return {"state": PENDING, "disposition": disposition, "next_at": naive_utc(opening)}

    def reconcile_stale(self, older_than: datetime, now: datetime) -> list[ContactResult]:
        """Repair what dead workers left before ``older_than``; returns the contacts moved on.

        1. Campaign attempts claimed that the provider never named: each is ended as
           failed ("dialler lost"), never dialled again under its number, and its contact
           is treated as after a retryable failure (its next attempt, if the ``failed``
           retry rule allows one).
        2. Attempts that ended while their contact still waits in ``dialing`` (the task
           applying the end was lost with its worker): their end is applied now. Whether
           the provider called the error retryable was lost too: an error with a provider
           code counts as final (an invalid number is never retried), one without (the
           call failed, or the dialler was lost) as retryable.

        Give ``older_than`` well past the time a dial takes: a dial still in flight would
        otherwise be counted lost and the contact dialled again under the next number.
        """
        older_than = naive_utc(older_than)
        results: list[ContactResult] = []
        for stale in self.outbound.stale_dials(older_than):
            if stale.contact_id is None:
                continue  # single calls are the dialler's
            ended = self.outbound.finish(stale.id, Disposition.FAILED, error=DIALLER_LOST)
            if ended is None or ended.error != DIALLER_LOST:
                continue  # finished meanwhile by its own dialler
            logger.warning(f"attempt {stale.id}: dialler lost before the provider named it")
            results.append(self.attempt_finished(ended, now, retryable=True))
        for ended in self._ended_not_applied(older_than):
            result = self.attempt_finished(ended, now, retryable=ended.error_code is None)
            if result.changed:
                logger.warning(f"attempt {ended.id}: its end applied late (its worker was lost)")
                results.append(result)
        return results

    def _ended_not_applied(self, older_than: datetime) -> list[Attempt]:
        """Attempts ended before ``older_than`` whose contact still waits on them."""
        query = (
            select(ATTEMPTS.c.id)
            .join(CONTACTS, CONTACTS.c.last_attempt_id == ATTEMPTS.c.id)
            .where(
                CONTACTS.c.state == DIALING,
                ATTEMPTS.c.state == ENDED,
                ATTEMPTS.c.ended_at < older_than,
            )
        )
        with self.engine.connect() as conn:
            ids = [row.id for row in conn.execute(query)]
        return [a for a in map(self.outbound.attempt, ids) if a is not None]

    def _complete_if_done(self, conn: Connection, campaign_id: str, now: datetime) -> None:
        """A running campaign with no contact left pending or dialling is completed."""
        open_contacts = exists().where(
            CONTACTS.c.campaign_id == campaign_id, CONTACTS.c.state.in_((PENDING, DIALING))
        )
        conn.execute(
            update(CAMPAIGNS)
            .where(CAMPAIGNS.c.id == campaign_id, CAMPAIGNS.c.state == RUNNING, ~open_contacts)
            .values(state=COMPLETED, updated_at=now)
        )

    def _result(
        self, conn: Connection, contact_id: str, attempt_id: str, *, changed: bool = True
    ) -> ContactResult:
        row = conn.execute(select(CONTACTS).where(CONTACTS.c.id == contact_id)).first()
        if row is None:
            raise CampaignNotFound(f"no campaign contact {contact_id}")
        return ContactResult(
            contact_id=row.id,
            campaign_id=row.campaign_id,
            state=row.state,
            disposition=row.disposition,
            attempts=row.attempts,
            next_at=row.next_at,
            final=row.state != PENDING and row.state != DIALING,
            changed=changed,
            attempt_id=attempt_id,
        )
