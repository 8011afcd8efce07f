"""A campaign worker killed with ``kill -9`` mid-campaign loses no contact and dials nothing twice.

The worker is a real process (``python -m simulator.queue_worker``: the runner and huey's
consumer, as ``callagent worker`` runs them, on the shipped campaign store) on the real
queue backend (SQLite file, and Redis when a redis-server can be started). The simulated
network's callees run in this process, as a provider's status callbacks reach the server,
so calls placed before the kill still end. The worker is killed while calls are in flight,
restarted, and the campaign must finish with every contact done and no (contact, attempt)
dialled twice.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.outbound.loop_bridge import LoopBridge
from integrations.outbound.campaigns import CampaignStore
from integrations.outbound.queue import make_huey
from integrations.storage import migrate
from integrations.storage.engine import make_engine, sqlite_url
from simulator.fake_dialer import FakeCallees
from simulator.queue_worker import sim_campaign, sim_rules, sim_runner
from tests.support.queue import queue_url

ROOT = Path(__file__).resolve().parents[2]
CONTACTS = 30


class Worker:
    """A worker process that can be killed and started again."""

    def __init__(self, db: str, queue: str, dials: Path, log: Path):
        self.args = [
            sys.executable,
            "-m",
            "simulator.queue_worker",
            "--db",
            db,
            "--queue",
            queue,
            "--dials",
            str(dials),
            "--workers",
            "4",
            "--stale-dial-s",
            "2",
        ]
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.args, cwd=ROOT, env=env, stderr=log)

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh queue URL on each backend."""
    with queue_url(request.param, tmp_path) as url:
        yield url


def dials(path: Path) -> list[tuple[str, int]]:
    """(contact, attempt number) of every dial the network saw."""
    with sqlite3.connect(path) as conn:
        return [(c, n) for c, n in conn.execute("select contact_id, number from dials")]


def test_a_worker_killed_mid_campaign_loses_no_contact_and_dials_nothing_twice(
    backend: str, tmp_path: Path
) -> None:
    db = sqlite_url(tmp_path / "calls.db")
    engine = make_engine(db)
    migrate.upgrade(engine)
    store = CampaignStore(engine)
    dial_log = tmp_path / "dials.db"
    loop = LoopBridge.own()
    server_side = sim_runner(make_huey(backend), engine, dial_log, loop)  # enqueues only
    callees = FakeCallees(
        store.outbound, dial_log, server_side.attempt_ended, answer_s=(0.3, 0.8)
    ).start()
    worker = Worker(db, backend, dial_log, tmp_path / "worker.log")
    phones = [f"+1555555{1000 + i}" for i in range(CONTACTS)]
    retries = ("no-answer=1x1s", "busy=1x1s", "voicemail-left=1x1s", "failed=2x1s")
    campaign_id = sim_campaign(store, phones, sim_rules(retries, max_concurrent=6))
    try:
        worker.start()
        server_side.kick_campaign(campaign_id)
        deadline = time.monotonic() + 60
        while len(dials(dial_log)) < 10:
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.05)
        worker.kill9()  # calls in flight, claims and tasks under way
        left = [c for c in store.contacts(campaign_id) if c.state != "done"]
        assert left, "the campaign finished before the kill"

        time.sleep(2.5)  # a supervisor restarts it; its claims are older than the stale limit
        worker.start()
        deadline = time.monotonic() + 90
        while any(c.state != "done" for c in store.contacts(campaign_id)):
            assert time.monotonic() < deadline, (
                Counter(c.state for c in store.contacts(campaign_id)),
                (tmp_path / "worker.log").read_text()[-3000:],
            )
            time.sleep(0.1)
    finally:
        worker.stop()
        callees.stop()
        loop.close()

    contacts = store.contacts(campaign_id)
    assert len(contacts) == CONTACTS
    assert all(c.state == "done" and c.disposition for c in contacts)
    placed = dials(dial_log)
    twice = [key for key, n in Counter(placed).items() if n > 1]
    assert twice == []
    assert {c for c, _n in placed} == {c.id for c in contacts}  # every contact was dialled
    engine.dispose()
