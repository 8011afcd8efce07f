"""The campaign runner on the real job queue: huey on SQLite (and Redis), a real consumer.

The campaign store is the shipped one (its rules: calling windows, retries, the
do-not-call list) and the network is the simulator's fake (calls end after a short random
delay); the queue, its consumer threads, the scheduler (retries at their eta) and the
claims are the real ones. Tests about time freeze or shift the runner's clock.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot.outbound.consumer import InProcessConsumer
from bot.outbound.loop_bridge import LoopBridge
from bot.outbound.runner import CampaignRunner, RunnerTiming
from integrations.outbound.campaigns import CampaignStore
from integrations.outbound.queue import make_huey
from integrations.outbound.store import Attempt, OutboundStore
from integrations.screen_pop import verify_signature
from integrations.storage import migrate
from integrations.storage.engine import make_engine, sqlite_url
from integrations.storage.records import utcnow
from simulator.bench.campaign import most_in_flight
from simulator.fake_dialer import FakeCallees
from simulator.queue_worker import sim_campaign, sim_rules, sim_runner
from tests.support.queue import queue_url

SECRET = "result-webhook-secret-for-tests"


class Clock:
    """The runner's clock: real time, shifted by ``shift``, or ``frozen`` at one moment."""

    def __init__(self) -> None:
        self.shift = timedelta(0)
        self.frozen: datetime | None = None

    def __call__(self) -> datetime:
        return self.frozen if self.frozen is not None else utcnow() + self.shift


@dataclass
class Campaigns:
    """A running queue with its store, network and helpers."""

    store: CampaignStore
    attempts: OutboundStore
    runner: CampaignRunner
    callees: FakeCallees
    clock: Clock

    def create(
        self, phones: list[str], *retries: str, now: datetime | None = None, **rules: Any
    ) -> str:
        """A running campaign (open all week, unpaced, only the ``retries`` given)."""
        return sim_campaign(self.store, phones, sim_rules(retries, **rules), now=now)

    def wait(self, done: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "the campaign did not get there in time"
            time.sleep(0.05)

    def settled(self, campaign_id: str) -> bool:
        return all(c.state == "done" for c in self.store.contacts(campaign_id))

    def all_attempts(self, campaign_id: str) -> list[Attempt]:
        return sorted(
            self.attempts.attempts(campaign_id=campaign_id), key=lambda a: a.created_at or 0
        )


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
def campaigns(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Campaigns]:
    """The runner on a fresh queue (``sqlite``, ``redis`` or ``postgresql``), 4 consumer threads."""
    with queue_url(request.param, tmp_path) as url:
        engine = make_engine(sqlite_url(tmp_path / "calls.db"))
        migrate.upgrade(engine)
        loop = LoopBridge.own()
        clock = Clock()
        runner = sim_runner(
            make_huey(url),
            engine,
            tmp_path / "dials.db",
            loop,
            timing=RunnerTiming(webhook_tries=3, webhook_retry_s=1),
            refuse={"0199": (21217, False), "0198": (31005, True)},
            webhook_secret=SECRET,
            clock=clock,
        )
        store = CampaignStore(engine)
        callees = FakeCallees(
            store.outbound,
            tmp_path / "dials.db",
            lambda attempt_id: runner.attempt_ended(attempt_id),
            answer_s=(0.2, 0.4),
        ).start()
        consumer = InProcessConsumer(runner, workers=4)
        consumer.start()
        try:
            yield Campaigns(store, store.outbound, runner, callees, clock)
        finally:
            consumer.stop(timeout_s=10)
            callees.stop()
            loop.close()
            engine.dispose()


def phones(n: int, start: int = 100) -> list[str]:
    return [f"+1555555{start + i:04d}" for i in range(n)]


def test_no_answer_is_retried_at_its_eta_then_done(campaigns: Campaigns) -> None:
    campaigns.callees.outcomes = {"no-answer": 1.0}
    campaign_id = campaigns.create(phones(3), "no-answer=1x1s", max_concurrent=5)
    campaigns.runner.kick_campaign(campaign_id)
    campaigns.wait(lambda: campaigns.settled(campaign_id))

    by_contact: dict[str, list[Attempt]] = {}
    for a in campaigns.all_attempts(campaign_id):
        by_contact.setdefault(a.contact_id or "", []).append(a)
    assert len(by_contact) == 3
    for first, second in by_contact.values():
        assert (first.number, second.number) == (1, 2)
        assert first.disposition == second.disposition == "no-answer"
        assert first.ended_at is not None and second.created_at is not None
        assert second.created_at - first.ended_at >= timedelta(seconds=1)  # its eta


def test_never_more_calls_in_flight_than_the_cap(campaigns: Campaigns) -> None:
    campaign_id = campaigns.create(phones(12), max_concurrent=3)
    campaigns.runner.kick_campaign(campaign_id)
    campaigns.wait(lambda: campaigns.settled(campaign_id))

    attempts = campaigns.all_attempts(campaign_id)
    assert len(attempts) == 12
    assert most_in_flight(attempts) <= 3


def test_calls_per_second_spaces_the_dials(campaigns: Campaigns) -> None:
    campaign_id = campaigns.create(phones(5), max_concurrent=10, calls_per_second=4)
    campaigns.runner.kick_campaign(campaign_id)
    campaigns.wait(lambda: campaigns.settled(campaign_id))

    starts = [a.created_at for a in campaigns.all_attempts(campaign_id)]
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]  # type: ignore[operator]
    assert len(starts) == 5
    assert min(gaps) >= 0.2  # 1/4 s apart, less the clock's resolution


def test_a_paused_campaign_is_not_dialled_until_resumed(campaigns: Campaigns) -> None:
    later = utcnow() + timedelta(hours=1)  # not due before it is paused
    campaign_id = campaigns.create(phones(4), max_concurrent=4, now=later)
    campaigns.store.pause(campaign_id)
    campaigns.clock.shift = timedelta(hours=1)  # now due
    campaigns.runner.kick_campaign(campaign_id)
    campaigns.runner.reconcile()
    for contact in campaigns.store.contacts(campaign_id):  # even a dial enqueued directly
        campaigns.runner.dial_contact(contact.id, campaign_id)
    time.sleep(1.5)
    assert campaigns.attempts.attempts(campaign_id=campaign_id) == []

    campaigns.store.resume(campaign_id)
    campaigns.runner.kick_campaign(campaign_id)
    campaigns.wait(lambda: campaigns.settled(campaign_id))
    assert len(campaigns.attempts.attempts(campaign_id=campaign_id)) == 4


def test_dial_errors_are_recorded_with_their_code_and_only_retryable_ones_retried(
    campaigns: Campaigns,
) -> None:
    campaigns.callees.outcomes = {"confirmed": 1.0}
    campaign_id = campaigns.create(
        ["+15555550199", "+15555550198", "+15555550100"], "failed=1x1s", max_concurrent=3
    )
    campaigns.runner.kick_campaign(campaign_id)
    campaigns.wait(lambda: campaigns.settled(campaign_id))

    by_phone: dict[str, list[Attempt]] = {}
    for a in campaigns.all_attempts(campaign_id):
        by_phone.setdefault(a.to, []).append(a)
    invalid, unreachable, fine = (
        by_phone["+15555550199"],
        by_phone["+15555550198"],
        by_phone["+15555550100"],
    )
    assert [(a.disposition, a.error_code) for a in invalid] == [("failed", 21217)]
    assert [(a.number, a.error_code) for a in unreachable] == [(1, 31005), (2, 31005)]
    assert [a.disposition for a in fine] == ["confirmed"]


def test_a_contact_outside_its_window_is_dialled_only_once_it_opens(campaigns: Campaigns) -> None:
    campaigns.callees.outcomes = {"confirmed": 1.0}
    wed_8am = datetime(2026, 1, 14, 8, 0)  # UTC; New York is at 03:00, Paris at 09:00
    opens = datetime(2026, 1, 14, 14, 0)  # 09:00 in New York
    campaigns.clock.frozen = wed_8am
    campaign_id = sim_campaign(
        campaigns.store,
        ["+12125550101", "+33612345678"],
        sim_rules(windows={"mon-fri": ["09:00-17:00"]}),
        timezones=["America/New_York", "Europe/Paris"],
        now=wed_8am,
    )
    campaigns.runner.kick_campaign(campaign_id)
    new_york, paris = campaigns.store.contacts(campaign_id)
    campaigns.wait(lambda: campaigns.store.contacts(campaign_id)[1].state == "done")
    campaigns.wait(lambda: campaigns.store.contacts(campaign_id)[0].next_at == opens)

    campaigns.clock.frozen = opens - timedelta(seconds=1)  # a second before it opens
    campaigns.runner.kick_campaign(campaign_id)
    campaigns.runner.reconcile()
    campaigns.runner.dial_contact(new_york.id, campaign_id)  # even a dial enqueued directly
    time.sleep(1.5)
    assert [a.contact_id for a in campaigns.all_attempts(campaign_id)] == [paris.id]

    campaigns.clock.frozen = opens
    campaigns.runner.reconcile()  # as every minute
    campaigns.wait(lambda: campaigns.settled(campaign_id))
    dialled = {a.contact_id: a.created_at for a in campaigns.all_attempts(campaign_id)}
    assert dialled == {paris.id: wed_8am, new_york.id: opens}


def test_a_number_put_on_the_do_not_call_list_after_creation_is_never_dialled(
    campaigns: Campaigns,
) -> None:
    later = utcnow() + timedelta(hours=1)  # not due before the number is listed
    campaign_id = campaigns.create(phones(3), max_concurrent=1, now=later)
    campaigns.attempts.dnc_add(phones(3)[0], "api")
    campaigns.clock.shift = timedelta(hours=1)
    campaigns.runner.kick_campaign(campaign_id)  # fills its one slot with the listed number
    # the refused claim refills the slot at once (not at the next minute's reconcile)
    campaigns.wait(lambda: campaigns.settled(campaign_id), timeout=10)

    listed = campaigns.store.contacts(campaign_id)[0]
    assert (listed.disposition, listed.attempts) == ("do-not-call", 0)
    dialled = {a.to for a in campaigns.all_attempts(campaign_id)}
    assert dialled == {phones(3)[1], phones(3)[2]}
    assert campaigns.store.campaign(campaign_id).state == "completed"


def test_an_end_whose_task_was_lost_is_applied_by_the_reconcile(campaigns: Campaigns) -> None:
    campaigns.callees.outcomes = {"confirmed": 1.0}
    lost: list[str] = []
    campaigns.callees.ended = lost.append  # each attempt_ended dies with its worker
    campaign_id = campaigns.create(phones(3), max_concurrent=3)
    campaigns.runner.kick_campaign(campaign_id)
    campaigns.wait(lambda: len(lost) == 3)
    assert {c.state for c in campaigns.store.contacts(campaign_id)} == {"dialing"}

    campaigns.clock.shift = timedelta(minutes=5)  # past the stale limit
    campaigns.runner.reconcile()
    campaigns.wait(lambda: campaigns.settled(campaign_id))
    contacts = campaigns.store.contacts(campaign_id)
    assert {c.disposition for c in contacts} == {"confirmed"}
    assert len(campaigns.all_attempts(campaign_id)) == 3  # applied, not redialled


class Receiver(BaseHTTPRequestHandler):
    """A result-webhook receiver: fails the first delivery of each attempt, then accepts."""

    seen: list[dict[str, Any]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            key = self.headers["Idempotency-Key"]
            first = not any(s["key"] == key for s in self.seen)
            self.seen.append(
                {
                    "key": key,
                    "delivery": self.headers["X-Callagent-Attempt"],
                    "signed": verify_signature(SECRET, body, self.headers["X-Callagent-Signature"]),
                    "body": json.loads(body),
                }
            )
        self.send_response(503 if first else 204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


def test_result_webhooks_are_signed_and_redelivered_after_a_failure(
    campaigns: Campaigns,
) -> None:
    campaigns.callees.outcomes = {"confirmed": 1.0}
    Receiver.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/results"
        campaign_id = campaigns.create(phones(2), result_webhook_url=url)
        campaigns.runner.kick_campaign(campaign_id)
        campaigns.wait(lambda: len(Receiver.seen) >= 4)
    finally:
        server.shutdown()

    attempt_ids = {a.id for a in campaigns.all_attempts(campaign_id)}
    assert {s["key"] for s in Receiver.seen} == attempt_ids  # idempotency key = attempt id
    assert all(s["signed"] for s in Receiver.seen)
    for attempt_id in attempt_ids:
        deliveries = [s for s in Receiver.seen if s["key"] == attempt_id]
        assert [d["delivery"] for d in deliveries] == ["1", "2"]
        body = deliveries[-1]["body"]
        assert body["event"] == "attempt.finished"
        assert body["attempt"]["disposition"] == "confirmed"
        assert body["contact"]["state"] == "done"
        assert "+1555" not in json.dumps(body)  # no phone number in the payload
