"""A campaign's caps hold exactly when several workers claim at once (SQLite and PostgreSQL).

Each claimer has its own engine (its own connections), as a ``callagent worker`` process
on another host would; they race on one campaign through the shipped capped claim
(``CampaignDialing.claim_dial``), with no lock of their own.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from integrations.outbound.campaigns import CampaignStore
from integrations.outbound.dispositions import Disposition
from integrations.storage import CallStore
from integrations.storage.engine import make_engine
from integrations.storage.records import utcnow
from simulator.queue_worker import sim_rules
from tests.support.records import open_store

CLAIMERS = 4


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CallStore]:
    with open_store(request.param, tmp_path) as opened:
        yield opened


def create(store: CallStore, contacts: int, *, max_concurrent: int, calls_per_second: float) -> str:
    rules = sim_rules(max_concurrent=max_concurrent, calls_per_second=calls_per_second)
    csv = "phone\n" + "".join(f"+1555555{1000 + i}\n" for i in range(contacts))
    info, problems = CampaignStore(store.engine).create_from_csv(
        "caps", rules, csv, now=utcnow() - timedelta(minutes=1)
    )
    assert problems == []
    return info.id


def claimers(store: CallStore) -> list[CampaignStore]:
    """One campaign store per claimer, each on its own engine (as separate processes)."""
    url = store.engine.url.render_as_string(hide_password=False)
    return [CampaignStore(make_engine(url)) for _ in range(CLAIMERS)]


def race(stores: list[CampaignStore], campaign_id: str, work: Claimer) -> None:
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def run(campaigns: CampaignStore) -> None:
        start.wait()
        try:
            work(campaigns)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for s in stores:
        s.engine.dispose()
    assert not errors, errors


class Claimer:
    """Claims every due contact of a campaign, as a worker's dial tasks do."""

    def __init__(self, campaign_id: str, *, hold_s: float = 0.0, ends: bool = True):
        self.campaign_id = campaign_id
        self.hold_s = hold_s
        self.ends = ends  # False: keep every call in flight, stop at the cap
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most = 0
        self.claimed: list[datetime] = []
        self.attempts: list[str] = []

    def __call__(self, campaigns: CampaignStore) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            due = campaigns.due_contacts(utcnow(), 50, campaign_id=self.campaign_id)
            if not due:
                return
            contact = random.choice(due)
            claim = campaigns.claim_dial(contact.contact_id, self.campaign_id, utcnow())
            if claim.outcome == "paced":
                time.sleep(claim.wait_s)
            elif claim.outcome == "at-cap":
                if not self.ends:
                    return  # nothing in flight ends: the cap stays full
                time.sleep(0.005)
            elif claim.attempt is not None:
                with self.lock:  # counted after the claim committed...
                    self.in_flight += 1
                    self.most = max(self.most, self.in_flight)
                    self.claimed.append(claim.attempt.created_at or utcnow())
                    self.attempts.append(claim.attempt.id)
                if not self.ends:
                    continue
                time.sleep(self.hold_s * random.random())
                with self.lock:  # ...and uncounted before its end is written
                    self.in_flight -= 1
                campaigns.outbound.finish(claim.attempt.id, Disposition.BUSY)


def test_claimers_racing_fill_the_cap_exactly(store: CallStore) -> None:
    campaign_id = create(store, 12, max_concurrent=3, calls_per_second=100)
    outbound = CampaignStore(store.engine).outbound
    for _round in range(3):
        work = Claimer(campaign_id, ends=False)
        race(claimers(store), campaign_id, work)
        assert len(work.attempts) == 3  # all four stop at the cap: filled, never passed
        for attempt_id in work.attempts:  # the three calls end: three slots free again
            outbound.finish(attempt_id, Disposition.BUSY)


def test_claimers_racing_never_exceed_max_concurrent(store: CallStore) -> None:
    campaign_id = create(store, 24, max_concurrent=3, calls_per_second=100)
    work = Claimer(campaign_id, hold_s=0.05)
    race(claimers(store), campaign_id, work)

    assert len(work.claimed) == 24  # every contact dialled once
    assert work.most <= 3, f"{work.most} calls in flight at once"  # never past the cap


def test_claimers_racing_keep_the_calls_per_second(store: CallStore) -> None:
    campaign_id = create(store, 10, max_concurrent=100, calls_per_second=20)
    work = Claimer(campaign_id)
    race(claimers(store), campaign_id, work)

    starts = sorted(work.claimed)
    assert len(starts) == 10
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 0.05 - 1e-6  # 1/20 s between any two dials, whichever worker


def test_a_capped_claim_refuses_a_paused_campaign_and_a_taken_contact(store: CallStore) -> None:
    campaign_id = create(store, 2, max_concurrent=1, calls_per_second=100)
    campaigns = CampaignStore(store.engine)
    first, second = (c.contact_id for c in campaigns.due_contacts(utcnow(), 10))
    claim = campaigns.claim_dial(first, campaign_id, utcnow())
    assert claim.outcome == "claimed" and claim.attempt is not None
    assert campaigns.claim_dial(second, campaign_id, utcnow()).outcome == "at-cap"
    campaigns.outbound.finish(claim.attempt.id, Disposition.BUSY)
    assert campaigns.claim_dial(first, campaign_id, utcnow() + timedelta(1)).outcome == "refused"
    campaigns.pause(campaign_id)
    assert campaigns.claim_dial(second, campaign_id, utcnow() + timedelta(1)).outcome == "refused"
