"""The campaign runner on the real job queue: huey on SQLite (and Redis), a real consumer.

The campaign store is the simulator's stand-in over the real call-record tables and the
network is the simulator's fake (calls end after a short random delay); the queue, its
consumer threads, the scheduler (retries at their eta) and the claims are the real ones.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot.outbound.consumer import InProcessConsumer
from bot.outbound.loop_bridge import LoopBridge
from bot.outbound.runner import CampaignRunner, RunnerTiming
from integrations.outbound.queue import make_huey
from integrations.outbound.store import Attempt, OutboundStore
from integrations.screen_pop import verify_signature
from integrations.storage import migrate
from integrations.storage.engine import make_engine, sqlite_url
from simulator.bench.campaign import most_in_flight
from simulator.campaign_double import SimpleCampaignStore
from simulator.fake_dialer import FakeCallees
from simulator.queue_worker import sim_runner
from tests.support.queue import queue_url

SECRET = "result-webhook-secret-for-tests"


@dataclass
class Campaigns:
    """A running queue with its store, network and helpers."""

    store: SimpleCampaignStore
    attempts: OutboundStore
    runner: CampaignRunner
    callees: FakeCallees

    def wait(self, done: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "the campaign did not get there in time"
            time.sleep(0.05)

    def settled(self, campaign_id: str) -> bool:
        return all(c["state"] == "done" for c in self.store.contacts(campaign_id))

    def all_attempts(self, campaign_id: str) -> list[Attempt]:
        return sorted(
            self.attempts.attempts(campaign_id=campaign_id), key=lambda a: a.created_at or 0
        )


@pytest.fixture(params=["sqlite", "redis"])
def campaigns(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Campaigns]:
    """The runner on a fresh queue (``sqlite`` or ``redis``) with 4 consumer threads."""
    with queue_url(request.param, tmp_path) as url:
        engine = make_engine(sqlite_url(tmp_path / "calls.db"))
        migrate.upgrade(engine)
        loop = LoopBridge.own()
        runner = sim_runner(
            make_huey(url),
            engine,
            tmp_path / "dials.db",
            loop,
            timing=RunnerTiming(webhook_tries=3, webhook_retry_s=1),
            refuse={"0199": (21217, False), "0198": (31005, True)},
            webhook_secret=SECRET,
        )
        store = SimpleCampaignStore(engine)
        callees = FakeCallees(
            store.attempts,
            tmp_path / "dials.db",
            lambda attempt_id: runner.attempt_ended(attempt_id),
            answer_s=(0.2, 0.4),
        ).start()
        consumer = InProcessConsumer(runner, workers=4)
        consumer.start()
        try:
            yield Campaigns(store, store.attempts, runner, callees)
        finally:
            consumer.stop(timeout_s=10)
            callees.stop()
            loop.close()
            engine.dispose()


def phones(n: int, start: int = 100) -> list[str]:
    return [f"+1555555{start + i:04d}" for i in range(n)]


def test_no_answer_is_retried_at_its_eta_then_done(campaigns: Campaigns) -> None:
    campaigns.callees.outcomes = {"no-answer": 1.0}
    campaign_id = campaigns.store.create(
        phones(3), max_concurrent=5, retries={"no-answer": (1, 1.0)}
    )
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
    campaign_id = campaigns.store.create(phones(12), max_concurrent=3)
    campaigns.runner.kick_campaign(campaign_id)
    campaigns.wait(lambda: campaigns.settled(campaign_id))

    attempts = campaigns.all_attempts(campaign_id)
    assert len(attempts) == 12
    assert most_in_flight(attempts) <= 3


def test_calls_per_second_spaces_the_dials(campaigns: Campaigns) -> None:
    campaign_id = campaigns.store.create(phones(5), max_concurrent=10, calls_per_second=4)
    campaigns.runner.kick_campaign(campaign_id)
    campaigns.wait(lambda: campaigns.settled(campaign_id))

    starts = [a.created_at for a in campaigns.all_attempts(campaign_id)]
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]  # type: ignore[operator]
    assert len(starts) == 5
    assert min(gaps) >= 0.2  # 1/4 s apart, less the clock's resolution


def test_a_paused_campaign_is_not_dialled_until_resumed(campaigns: Campaigns) -> None:
    campaign_id = campaigns.store.create(phones(4), max_concurrent=4, state="paused")
    campaigns.runner.kick_campaign(campaign_id)
    campaigns.runner.reconcile()
    for contact in campaigns.store.contacts(campaign_id):  # even a dial enqueued directly
        campaigns.runner.dial_contact(contact["id"], campaign_id)
    time.sleep(1.5)
    assert campaigns.attempts.attempts(campaign_id=campaign_id) == []

    campaigns.store.set_state(campaign_id, "running")
    campaigns.runner.kick_campaign(campaign_id)
    campaigns.wait(lambda: campaigns.settled(campaign_id))
    assert len(campaigns.attempts.attempts(campaign_id=campaign_id)) == 4


def test_dial_errors_are_recorded_with_their_code_and_only_retryable_ones_retried(
    campaigns: Campaigns,
) -> None:
    campaigns.callees.outcomes = {"confirmed": 1.0}
    campaign_id = campaigns.store.create(
        ["+15555550199", "+15555550198", "+15555550100"],
        max_concurrent=3,
        retries={"failed": (1, 0.5)},
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
        campaign_id = campaigns.store.create(phones(2), result_webhook_url=url)
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
