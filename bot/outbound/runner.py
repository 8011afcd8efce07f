"""The campaign runner: huey tasks that dial contacts, apply retries and report results.

Tasks (registered on the queue's huey instance, so every process that builds a runner
from the same settings, server or ``callagent worker``, runs the same tasks):

- ``dial_contact(contact_id, campaign_id)``: claims the attempt in one database
  transaction that holds the campaign's row, so the concurrency cap and the
  calls-per-second pace are exact across every worker thread, process and host (the
  campaign store's ``claim_dial``; it also re-checks state, window and do-not-call), and
  places it. At the cap
  the task ends: the next attempt to end refills the free slot. A refused claim (window
  closed, number listed, contact taken) leaves its slot free: it enqueues one refill
  (``kick_campaign``) unless one is pending for the campaign already. A fill skips
  contacts whose dial already waits in the queue (a mark in huey's storage, stale after
  ``stale_dial_s``), so fills racing each other do not pile up duplicate dials.
- ``attempt_ended(attempt_id, retryable)``: enqueued when a call or dial ends; applies the
  retry rules, schedules the next dial at the contact's ``next_at`` (huey eta), enqueues
  the result webhook and refills the campaign's free slots.
- ``deliver_result(...)``: one signed POST; huey redelivers failures with back-off.
- ``kick_campaign(campaign_id)``: on create and resume, fills the free slots.
- ``reconcile()``: every minute and at worker start: repairs what dead workers left (ends
  claims never dialled, applies attempts that ended while their ``attempt_ended`` was
  lost, with the same follow-up) and refills every running campaign with due contacts.

A task lost with a killed worker loses nothing: the database says what is due, the
reconcile enqueues it again, and a duplicate task is refused by the claim.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from huey import Huey, crontab
from huey.api import Task
from loguru import logger

from bot.outbound.dialer import DialError
from bot.outbound.loop_bridge import LoopBridge
from bot.outbound.ports import (
    PENDING,
    RUNNING,
    AttemptPlacer,
    AttemptResult,
    CampaignRunnerStore,
)
from integrations.outbound.dispositions import Disposition
from integrations.outbound.queue import StaleLock
from integrations.outbound.result_webhook import DeliveryFailed, deliver, result_payload
from integrations.outbound.store import Attempt, OutboundStore
from integrations.storage.records import utcnow

KICK_CAMPAIGN = "kick_campaign"
PACE_TRIES = 10
"""Claims a task tries, sleeping short pace waits between them, before it reschedules."""


@dataclass(frozen=True)
class RunnerTiming:
    """How the runner paces itself.

    Parameters:
        stale_dial_s: A claim the provider never named after this long is ended by the
            reconcile (the contact moves on; that attempt is never redialled).
        inline_pace_s: A pace wait up to this long is slept in the task (then the claim
            is tried again); a longer one reschedules the task.
        reconcile_batch: Due contacts read per reconcile to find campaigns to refill.
        webhook_tries: Deliveries of one result webhook, the first included.
        webhook_retry_s: First wait before a redelivery (doubles each time).
    """

    stale_dial_s: float = 120.0
    inline_pace_s: float = 1.0
    reconcile_batch: int = 1000
    webhook_tries: int = 8
    webhook_retry_s: int = 30


def as_eta(moment: datetime) -> datetime:
    """A naive UTC time (as the records keep it) made explicit for huey (naive = local)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class CampaignRunner:
    """Registers the campaign tasks on ``huey`` and runs them.

    Args:
        huey: The queue (:func:`integrations.outbound.queue.make_huey`).
        store: The campaign rules and contacts.
        attempts: The attempt rows.
        dialer: Places attempts.
        loop: Runs the dialler's coroutines.
        webhook_secret: Signs result webhooks (empty: webhooks are not sent).
        timing: Pacing and retry timing.
        clock: The current time, naive UTC (tests freeze it).
    """

    def __init__(
        self,
        huey: Huey,
        store: CampaignRunnerStore,
        attempts: OutboundStore,
        dialer: AttemptPlacer,
        loop: LoopBridge,
        *,
        webhook_secret: str = "",
        timing: RunnerTiming | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.huey = huey
        self.store = store
        self.attempts = attempts
        self.dialer = dialer
        self.loop = loop
        self.timing = timing or RunnerTiming()
        self.clock = clock
        self._webhook_secret = webhook_secret
        # "a dial of this contact waits in the queue", "a refill is pending": a fill skips
        # contacts already queued, so concurrent fills do not pile up duplicate dials
        self._marks = StaleLock(huey, stale_s=self.timing.stale_dial_s)
        task = huey.task
        self.dial_contact = task(name="dial_contact")(self._dial_contact)
        self.attempt_ended = task(name="attempt_ended")(self._attempt_ended)
        self.kick_campaign = task(name=KICK_CAMPAIGN)(self._fill)
        self.deliver_result = task(
            name="deliver_result",
            retries=self.timing.webhook_tries - 1,
            retry_delay=self.timing.webhook_retry_s,
            retry_backoff=2,
            context=True,
        )(self._deliver_result)
        self.reconcile = huey.periodic_task(crontab(minute="*"), name="reconcile")(self._reconcile)

    # dial_contact

    def _dial_contact(self, contact_id: str, campaign_id: str) -> str:
        outcome, attempt = self._claim(contact_id, campaign_id)
        if outcome != "paced":  # no longer waiting in the queue
            self._marks.release(self._queued_key(contact_id))
        if outcome == "refused":
            self._refill_soon(campaign_id)
        if attempt is None:
            return outcome
        return self._place(attempt)

    def _claim(self, contact_id: str, campaign_id: str) -> tuple[str, Attempt | None]:
        """The store's capped claim; a short pace wait is slept here, a long one rescheduled."""
        campaign = self.store.dialing_campaign(campaign_id)
        if campaign is None or campaign.state != RUNNING:
            return "not-running", None
        for _ in range(PACE_TRIES):
            claim = self.store.claim_dial(contact_id, campaign_id, self.clock())
            if claim.outcome != "paced" or claim.wait_s > self.timing.inline_pace_s:
                break
            time.sleep(claim.wait_s)  # outside the transaction: other claimers go on
        if claim.outcome == "paced":
            self.dial_contact.schedule((contact_id, campaign_id), delay=claim.wait_s)
        return claim.outcome, claim.attempt

    def _refill_soon(self, campaign_id: str) -> None:
        """A refused claim left a slot free: one refill per campaign at a time (no cascade)."""
        if self._marks.try_acquire(f"refill.{campaign_id}"):
            self.kick_campaign(campaign_id)

    def _queued_key(self, contact_id: str) -> str:
        return f"queued.{contact_id}"

    def _place(self, attempt: Attempt) -> str:
        try:
            self.loop.run(self.dialer.place(attempt))
        except DialError as e:
            logger.warning(
                f"campaign {attempt.campaign_id}: attempt {attempt.id} refused by the provider "
                f"(code {e.code}, {'retryable' if e.retryable else 'final'})"
            )
            self.attempts.finish(attempt.id, Disposition.FAILED, error_code=e.code, error=str(e))
            self._attempt_ended(attempt.id, e.retryable)
            return "failed"
        return "placed"

    # attempt_ended, kick_campaign, reconcile

    def _attempt_ended(self, attempt_id: str, retryable: bool = True) -> str:
        attempt = self.attempts.attempt(attempt_id)
        if attempt is None or not attempt.ended:
            return "not-ended"
        if attempt.campaign_id is None or attempt.contact_id is None:
            return "not-a-campaign"
        result = self.store.attempt_finished(attempt, self.clock(), retryable)
        self._follow_up(result)
        self._fill(attempt.campaign_id)
        return result.state

    def _follow_up(self, result: AttemptResult) -> None:
        """After an attempt's end was applied: its contact's next dial, its result webhook."""
        if result.state == PENDING and result.next_at is not None:
            self.dial_contact.schedule(
                (result.contact_id, result.campaign_id), eta=as_eta(result.next_at)
            )
        campaign = self.store.dialing_campaign(result.campaign_id)
        if campaign is not None and campaign.result_webhook_url and result.attempt_id:
            self.deliver_result(
                result.campaign_id, result.contact_id, result.attempt_id, _contact_view(result)
            )

    def _fill(self, campaign_id: str) -> int:
        """Enqueue due contacts for the campaign's free slots; returns how many."""
        self._marks.release(f"refill.{campaign_id}")  # refusals from here on refill again
        campaign = self.store.dialing_campaign(campaign_id)
        if campaign is None or campaign.state != RUNNING:
            return 0
        free = campaign.max_concurrent - self.store.active_attempts(campaign_id)
        if free <= 0:
            return 0
        due = self.store.due_contacts(self.clock(), free, campaign_id=campaign_id)
        queued = [c for c in due if self._marks.try_acquire(self._queued_key(c.contact_id))]
        for contact in queued:
            self.dial_contact(contact.contact_id, campaign_id)
        return len(queued)

    def _reconcile(self) -> int:
        now = self.clock()
        moved = self.store.reconcile_stale(now - timedelta(seconds=self.timing.stale_dial_s), now)
        for result in moved:
            self._follow_up(result)
        if moved:
            logger.info(f"campaign reconcile: {len(moved)} contacts moved on after a lost worker")
        campaigns = {
            c.campaign_id for c in self.store.due_contacts(now, self.timing.reconcile_batch)
        }
        return sum(self._fill(campaign_id) for campaign_id in sorted(campaigns))

    # deliver_result

    def _deliver_result(
        self,
        campaign_id: str,
        contact_id: str,
        attempt_id: str,
        contact: dict[str, Any],
        task: Task | None = None,
    ) -> int | None:
        campaign = self.store.dialing_campaign(campaign_id)
        attempt = self.attempts.attempt(attempt_id)
        if campaign is None or not campaign.result_webhook_url or attempt is None:
            return None
        if not self._webhook_secret:
            logger.warning(
                f"campaign {campaign_id}: result webhook not sent: set "
                "CALLAGENT_RESULT_WEBHOOK_SECRET to sign it"
            )
            return None
        left = task.retries if task is not None else 0
        delivery = self.timing.webhook_tries - left
        payload = result_payload(attempt.as_dict(), {"id": contact_id, **contact})
        try:
            status = deliver(
                campaign.result_webhook_url,
                self._webhook_secret,
                payload,
                idempotency_key=attempt_id,
                delivery=delivery,
            )
        except DeliveryFailed as e:
            final = "giving up" if left == 0 else "will redeliver"
            logger.warning(
                f"campaign {campaign_id}: result webhook for attempt {attempt_id} failed "
                f"({e}, delivery {delivery}); {final}"
            )
            raise
        if status >= 300:
            logger.warning(
                f"campaign {campaign_id}: result webhook for attempt {attempt_id} refused "
                f"(HTTP {status}); not redelivered"
            )
        return status


def _kick_elsewhere(campaign_id: str) -> int:
    """Stands for :meth:`CampaignRunner.kick_campaign` where no runner is built (the CLI)."""
    raise RuntimeError(f"kick_campaign({campaign_id}) runs in a process with a campaign runner")


def enqueue_kick(huey: Huey, campaign_id: str) -> None:
    """Enqueue ``kick_campaign`` from a process that builds no runner (``callagent campaign``).

    The task is registered here under the runner's name (same module and name), so the
    server or ``callagent worker`` consuming ``huey``'s queue runs the real one.
    """
    task = huey.task(name=KICK_CAMPAIGN)(_kick_elsewhere)
    try:
        task(campaign_id)
    finally:
        task.unregister()


def _contact_view(result: AttemptResult) -> dict[str, Any]:
    return {
        "state": result.state,
        "next_at": result.next_at.isoformat() if result.next_at is not None else None,
    }
