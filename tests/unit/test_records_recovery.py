"""Crash recovery of call records: journaled turns survive a kill; dead workers' calls close.

The attack (issue 16, finding 5): a process killed with SIGKILL left its calls
``in_progress`` forever and lost a turn it had finished a moment before.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.settings import Settings, SettingsError
from integrations.storage import CallStart, CallStore, TurnRecord
from integrations.storage.engine import sqlite_url
from integrations.storage.journal import JOURNAL_DIR, Journal
from integrations.storage.records import utcnow
from integrations.storage.recovery import SERVER_LOST
from integrations.storage.workers import (
    WORKERS,
    Liveness,
    WorkerConfig,
    WorkerId,
    WorkerRegistry,
    name_this_host,
    this_host,
)
from tests.support.records import PG_SKIP, postgres_server_url

ROOT = Path(__file__).resolve().parents[2]

KILLED_MID_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from pipecat.frames.frames import (BotStartedSpeakingFrame, BotStoppedSpeakingFrame,
        StartFrame, TranscriptionFrame, TTSSpeakFrame)
    from integrations.storage import CallStore
    from integrations.storage.engine import sqlite_url
    from integrations.storage.workers import WorkerConfig
    from processors.call_recorder import CallRecorder
    from processors.frames import Band, NLUResultFrame

    data = Path(sys.argv[1])
    store = CallStore.open(sqlite_url(data / "calls.db"), spool_dir=data, worker=WorkerConfig())
    rec = CallRecorder(store, call_id="killed", transport="twilio")
    rec.observe(StartFrame())
    rec.observe(TTSSpeakFrame("Hello, how can I help?"))
    rec.observe(BotStartedSpeakingFrame())
    rec.observe(BotStoppedSpeakingFrame())
    rec.observe(TranscriptionFrame("what are your hours", "u", "t"))
    rec.observe(NLUResultFrame(text="what are your hours", intent="opening_hours",
                               confidence=0.9, band=Band.ACT))
    rec.observe(TTSSpeakFrame("We are open nine to five."))
    rec.observe(BotStartedSpeakingFrame())
    rec.observe(BotStoppedSpeakingFrame())  # the turn is finished: its record op is issued
    os.kill(os.getpid(), signal.SIGKILL)  # no flush: the writer is still waiting on the lock
    """
)


def test_a_turn_issued_just_before_a_kill_survives_and_the_call_is_closed(tmp_path):
    CallStore.open(sqlite_url(tmp_path / "calls.db")).close()  # schema in place
    lock = sqlite3.connect(tmp_path / "calls.db", timeout=0)
    lock.execute("BEGIN IMMEDIATE")  # another writer holds the database: writes must wait
    try:
        proc = subprocess.run(
            [sys.executable, "-c", KILLED_MID_WRITE, str(tmp_path)],
            cwd=ROOT,
            capture_output=True,
            timeout=120,
            env={**os.environ, "LOGURU_LEVEL": "WARNING"},
        )
    finally:
        lock.rollback()
        lock.close()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]

    store = CallStore.open(sqlite_url(tmp_path / "calls.db"), spool_dir=tmp_path, worker=_me())
    try:
        assert store.writer.ready.wait(30)
        store.flush()
        call = store.get_call("killed")
        assert call is not None, "the call's records were lost with the process"
        assert [(t["caller_text"], t["bot_text"]) for t in call["turns"]] == [
            (None, "Hello, how can I help?"),
            ("what are your hours", "We are open nine to five."),
        ]
        assert call["outcome"] == "failed"
        assert call["end_reason"] == SERVER_LOST
        assert call["turn_count"] == 1
        assert not list((tmp_path / JOURNAL_DIR).glob("*killed*"))
        assert len(list((tmp_path / JOURNAL_DIR).iterdir())) == 1  # only this process's own
    finally:
        store.close()


@contextmanager
def database(backend: str, tmp: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield sqlite_url(tmp / "calls.db")
        return
    url = postgres_server_url()
    if url is None:
        pytest.skip(PG_SKIP)
    from integrations.storage.scratch import scratch_postgres_database

    with scratch_postgres_database(url, "callagent_test") as scratch:
        yield scratch


def _get(store: CallStore, call_id: str) -> dict[str, Any]:
    call = store.get_call(call_id)
    assert call is not None, call_id
    return call


def _me() -> WorkerConfig:
    return WorkerConfig(id=WorkerId.current())


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _open(url: str, tmp: Path, name: str, worker: WorkerId) -> CallStore:
    spool = tmp / name
    return CallStore.open(url, spool_dir=spool, worker=WorkerConfig(id=worker))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_live_peer_keeps_its_calls_and_a_dead_one_has_them_closed(backend, tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with database(backend, tmp_path) as url:
        peers = {
            "other-host": WorkerId("other-host", 4242, "aa"),  # fresh heartbeat
            "same-host-live": WorkerId(this_host(), sleeper.pid, "bb"),
            "same-host-dead": WorkerId(this_host(), _dead_pid(), "cc"),
            "other-host-silent": WorkerId("silent-host", 4242, "dd"),
        }
        stores = {name: _open(url, tmp_path, name, w) for name, w in peers.items()}
        me = _open(url, tmp_path, "me", WorkerId.current())
        try:
            for store in [*stores.values(), me]:  # start-up sweeps over before the calls exist
                assert store.writer.ready.wait(30)
            for name, store in stores.items():
                store.start_call(CallStart(f"call-{name}", "twilio"))
                store.save_turn(TurnRecord(f"call-{name}", 0, kind="greeting", bot_text="Hi"))
                assert store.flush()
            me.start_call(CallStart("call-me", "twilio"))
            assert me.flush()
            stale = utcnow() - timedelta(minutes=10)
            with me.engine.begin() as conn:
                conn.execute(
                    update(WORKERS)
                    .where(WORKERS.c.id == str(peers["other-host-silent"]))
                    .values(last_seen=stale)
                )

            assert me.recovery.close_orphaned_calls() == 2
            outcome = {n: _get(me, f"call-{n}")["outcome"] for n in [*peers, "me"]}
            assert outcome == {
                "other-host": "in_progress",
                "same-host-live": "in_progress",
                "same-host-dead": "failed",
                "other-host-silent": "failed",
                "me": "in_progress",
            }
            closed = _get(me, "call-same-host-dead")
            assert closed["end_reason"] == SERVER_LOST
            assert closed["ended_at"] >= closed["started_at"]
            known = set(me.registry.last_seen()) if me.registry else set()
            assert str(peers["same-host-dead"]) not in known  # forgotten once closed
            assert str(peers["other-host"]) in known
        finally:
            sleeper.kill()
            sleeper.wait()
            for store in [*stores.values(), me]:
                store.close()


def test_the_journal_is_emptied_once_written_and_removed_at_a_clean_close(tmp_path):
    store = CallStore.open(sqlite_url(tmp_path / "calls.db"), spool_dir=tmp_path, worker=_me())
    try:
        (journal,) = (tmp_path / JOURNAL_DIR).iterdir()
        store.start_call(CallStart("c", "twilio"))
        store.save_turn(TurnRecord("c", 0, bot_text="Hello"))
        assert store.flush()
        assert journal.stat().st_size == 0
        assert _get(store, "c")["worker_id"] == str(WorkerId.current())
    finally:
        store.close()
    assert not journal.exists()


def test_a_live_process_journal_is_left_alone(tmp_path):
    live = Journal(tmp_path, WorkerId.current())  # this (live) process's other store
    live.append(("start", CallStart("live", "twilio")))
    size = live.path.stat().st_size
    store = CallStore.open(sqlite_url(tmp_path / "calls.db"), spool_dir=tmp_path, worker=_me())
    try:
        assert store.writer.ready.wait(30)
        assert store.flush()
        assert live.path.stat().st_size == size
        assert store.get_call("live") is None
    finally:
        store.close()
        live.close()


def test_the_heartbeat_keeps_a_live_worker_fresh(tmp_path):
    worker = WorkerConfig(id=WorkerId.current(), heartbeat_secs=0.05, stale_secs=1.0)
    store = CallStore.open(sqlite_url(tmp_path / "calls.db"), spool_dir=tmp_path, worker=worker)
    try:
        assert store.writer.ready.wait(30) and store.registry is not None
        first = store.registry.last_seen()[str(worker.id)]
        deadline = time.monotonic() + 10
        while store.registry.last_seen()[str(worker.id)] == first:
            assert time.monotonic() < deadline, "no heartbeat after the first"
            time.sleep(0.05)
    finally:
        store.close()
    with CallStore.open(sqlite_url(tmp_path / "calls.db")).engine.connect() as conn:
        assert conn.execute(select(WORKERS)).all() == []  # a clean stop retires the worker


def test_a_stale_limit_shorter_than_three_heartbeats_is_refused():
    with pytest.raises(SettingsError) as info:
        Settings.load(
            {"CALLAGENT_WORKER_HEARTBEAT_SECS": "30", "CALLAGENT_WORKER_STALE_SECS": "60"}
        )
    assert "CALLAGENT_WORKER_STALE_SECS" in str(info.value)


def test_a_deployment_can_name_its_host_in_worker_ids():
    from bot.call.records import worker_config

    try:
        worker = worker_config(Settings.load({"CALLAGENT_WORKER_HOST": "agent-2.example"}))
        assert worker.id.host == "agent-2.example"
        assert WorkerId.current() == worker.id  # every later id names it too
        assert worker_config(Settings.load({})).id.host == this_host() != "agent-2.example"
    finally:
        name_this_host("")
    with pytest.raises(SettingsError) as info:
        Settings.load({"CALLAGENT_WORKER_HOST": "a:b"})
    assert "CALLAGENT_WORKER_HOST" in str(info.value)


def test_a_peer_whose_clock_runs_ahead_leaves_a_live_peers_calls_alone(tmp_path, monkeypatch):
    """Heartbeats and the sweep go by the database's clock, not each host's."""
    import integrations.storage.recovery as recovery
    import integrations.storage.workers as workers

    with database("postgresql", tmp_path) as url:
        me = _open(url, tmp_path, "me", WorkerId.current())
        try:
            assert me.writer.ready.wait(30)
            peer = WorkerId("other-host", 4242, "ee")
            WorkerRegistry(me.engine, Liveness(peer)).heartbeat()  # its clock, right
            me.start_call(CallStart("call-peer", "twilio", worker_id=str(peer)))
            assert me.flush()
            ahead = utcnow() + timedelta(minutes=10)
            for module in (workers, recovery):  # this host's clock, wrong
                monkeypatch.setattr(module, "utcnow", lambda: ahead, raising=False)
            assert me.recovery.close_orphaned_calls() == 0
            assert _get(me, "call-peer")["outcome"] == "in_progress"
        finally:
            me.close()
