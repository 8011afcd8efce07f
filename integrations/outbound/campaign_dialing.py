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

What follows an attempt's end is :mod:`integrations.outbound.campaign_endings`.

Phone numbers and variables stay in the rows: log lines carry ids only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from loguru import logger
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    Update,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from integrations.outbound.campaign_endings import CampaignEndings, complete_if_done
from integrations.outbound.campaign_types import (
    CAMPAIGNS,
    CONTACTS,
    DIALING,
    DONE,
    PENDING,
    RUNNING,
    SKIPPED,
    CampaignNotFound,
    DialClaim,
    DialingCampaign,
    DueContact,
    naive_utc,
)
from integrations.outbound.dispositions import Disposition
from integrations.outbound.rules import CampaignRules
from integrations.outbound.store import (
    ATTEMPTS,
    CREATED,
    DNC,
    IN_PROGRESS,
    RINGING,
    Attempt,
    OutboundStore,
    new_id,
)
from integrations.outbound.store import DIALING as ATTEMPT_DIALING

ACTIVE_ATTEMPT_STATES = (CREATED, ATTEMPT_DIALING, RINGING, IN_PROGRESS)


class _Held(Exception):
    """A capped claim stopped by a cap (raised inside its transaction to roll it back)."""

    def __init__(self, claim: DialClaim):
        super().__init__(claim.outcome)
        self.claim = claim


class CampaignDialing(CampaignEndings):
    """The queue's operations on campaigns (see the module's docstring).

    What follows an attempt's end it inherits from
    :class:`~integrations.outbound.campaign_endings.CampaignEndings`.
    """

    def __init__(self, engine: Engine, *, channel: str = "twilio"):
        """Use ``engine`` (the call-record engine, schema migrated to head).

        ``channel`` is how this deployment places campaign calls (``twilio`` or ``sip``):
        the attempts claimed here are written on it.
        """
        self.engine = engine
        self.channel = channel
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
            complete_if_done(conn, row.campaign_id, now)
            logger.info(f"campaign contact {contact_id}: on the do-not-call list, not dialled")
            return None
        windows = rules.calling_windows
        if not windows.is_open(now, row.timezone):
            opening = windows.next_open(now, row.timezone)
            if opening is None:
                conn.execute(update(CONTACTS).where(where).values(state=SKIPPED, **back))
                complete_if_done(conn, row.campaign_id, now)
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
            "channel": self.channel,
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
            channel=self.channel,
            campaign_id=row.campaign_id,
            contact_id=contact_id,
            number=row.attempts,
            created_at=now,
        )
