"""The campaign store's side for ended attempts: the retry rules, and repairs after dead workers.

When an attempt ends (:meth:`CampaignEndings.attempt_finished`) the retry rules decide:
back to ``pending`` at the later of the retry delay and the next window opening, or
``done`` with the final disposition. Attempts claimed but never named by the provider
(the dialler died) are finished as failed, never redialled under the same number, and the
contact gets its next attempt; attempts that ended while their end was never applied (the
worker applying it died) are applied (:meth:`CampaignEndings.reconcile_stale`).

Phone numbers stay in the rows: log lines carry ids only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from loguru import logger
from sqlalchemy import Connection, Engine, and_, exists, select, update

from integrations.outbound.campaign_types import (
    CAMPAIGNS,
    CANCELLED,
    COMPLETED,
    CONTACTS,
    DIALING,
    DONE,
    PENDING,
    RUNNING,
    SKIPPED,
    CampaignNotFound,
    ContactResult,
    naive_utc,
)
from integrations.outbound.dispositions import Disposition
from integrations.outbound.rules import CampaignRules
from integrations.outbound.store import ATTEMPTS, ENDED, Attempt, OutboundStore

DIALLER_LOST = "dialler lost"
"""The error of an attempt whose dialler died before the provider named the call."""


def complete_if_done(conn: Connection, campaign_id: str, now: datetime) -> None:
    """A running campaign with no contact left pending or dialling is completed."""
    open_contacts = exists().where(
        CONTACTS.c.campaign_id == campaign_id, CONTACTS.c.state.in_((PENDING, DIALING))
    )
    conn.execute(
        update(CAMPAIGNS)
        .where(CAMPAIGNS.c.id == campaign_id, CAMPAIGNS.c.state == RUNNING, ~open_contacts)
        .values(state=COMPLETED, updated_at=now)
    )


class CampaignEndings:
    """Ended attempts applied to their contacts (the base of ``CampaignDialing``)."""

    engine: Engine
    outbound: OutboundStore

    def rules(self, campaign_id: str) -> CampaignRules:
        """A campaign's rules (see ``CampaignDialing.rules``)."""
        raise NotImplementedError

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
                complete_if_done(conn, attempt.campaign_id, now)
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
