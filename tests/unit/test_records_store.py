"""The call store on SQLite and PostgreSQL: migrations, writes, reads, filters, stats."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError

from integrations.storage import (
    CallEnd,
    CallFilter,
    CallStart,
    CallStore,
    CallUpdate,
    Escalation,
    TurnRecord,
    parse_time,
)
from integrations.storage.caller_id import HashedCallerId, PlainCallerId, RedactedCallerId
from integrations.storage.engine import sqlite_url
from integrations.storage.export import EXPORTERS
from integrations.storage.migrate import head_revision
from integrations.storage.records import utcnow
from integrations.storage.writer import Chore, RecordWriter, Spool
from tests.support.records import call_row, open_store, turn_row

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    with open_store(request.param, tmp_path) as s:
        yield s


def test_migrations_create_the_schema_from_empty(store):
    assert store.revision() == head_revision()
    tables = set(inspect(store.engine).get_table_names())
    assert {"calls", "turns", "alembic_version"} <= tables
    store.upgrade()  # idempotent
    assert store.revision() == head_revision()


def test_a_call_is_written_and_read_back_whole(store):
    start = CallStart("c1", "twilio", caller="sha256:abc", agent="Dental")
    store.start_call(start)
    store.save_turn(TurnRecord("c1", 0, kind="greeting", bot_text="Hello", latency_ms=300.0))
    store.save_turn(
        TurnRecord(
            "c1",
            1,
            caller_text="when are you open",
            bot_text="Nine to five.",
            intent="opening_hours",
            confidence=0.93,
            runner_up="location",
            margin=0.6,
            band="act",
            path="classifier",
            entities={"date": {"text": "today"}},
            interrupted=True,
            latency_ms=450.0,
            stages_ms={"endpointing": 200, "end_of_turn": 100, "stt": 60, "tts": 40, "pipeline": 5},
            nlu_ms=7.5,
        )
    )
    escalation = Escalation(
        trigger="explicit_request",
        reason="asked for a person",
        summary={"intent": "billing"},
        transfer_result="completed",
    )
    store.update_call(CallUpdate("c1", crm_prefetch_ms=120.0))
    store.update_call(CallUpdate("c1", escalation=escalation))
    store.end_call(CallEnd("c1", utcnow(), 42.0, "escalated", "transferred", 1, "opening_hours"))
    assert store.flush()

    call = store.get_call("c1")
    assert call["outcome"] == "escalated" and call["end_reason"] == "transferred"
    assert call["caller"] == "sha256:abc" and call["duration_secs"] == 42.0
    assert call["crm_prefetch_ms"] == 120.0
    assert call["escalation"]["reason"] == "asked for a person"
    assert call["escalation"]["summary"] == {"intent": "billing"}
    assert call["escalation"]["transfer_result"] == "completed"
    greeting, turn = call["turns"]
    assert greeting["kind"] == "greeting" and greeting["caller_text"] is None
    assert turn["intent"] == "opening_hours" and turn["runner_up"] == "location"
    assert turn["interrupted"] is True and turn["entities"] == {"date": {"text": "today"}}
    assert turn["stages_ms"]["endpointing"] == 300.0  # endpointing + end of turn
    assert turn["stages_ms"]["nlu"] == 7.5 and turn["stages_ms"]["other"] == 5.0


def test_saving_a_turn_again_keeps_the_newest_version(store):
    store.start_call(CallStart("c2", "webrtc"))
    store.save_turn(TurnRecord("c2", 1, caller_text="hi", bot_text=None))
    store.save_turn(TurnRecord("c2", 1, caller_text="hi", bot_text="Hello!", latency_ms=380.0))
    store.flush()
    (turn,) = store.get_call("c2")["turns"]
    assert turn["bot_text"] == "Hello!" and turn["latency_ms"] == 380.0


def _seed(store, now):
    calls, turns = [], []
    for i in range(30):
        started = now - timedelta(days=i % 10, minutes=i + 1)
        outcome = ("resolved", "escalated", "abandoned")[i % 3]
        transport = "webrtc" if i % 5 == 0 else "twilio"
        calls.append(
            call_row(
                f"k{i:02d}",
                started,
                outcome=outcome,
                transport=transport,
                escalation_reason="asked for a person" if outcome == "escalated" else None,
            )
        )
        intent = "billing" if i % 4 == 0 else "opening_hours"
        turns.append(
            turn_row(
                f"k{i:02d}",
                1,
                started + timedelta(seconds=5),
                intent=intent,
                confidence=0.42 if i % 4 == 0 else 0.91,
                band="repair" if i % 4 == 0 else "act",
                latency_ms=400.0 + 10 * i,
            )
        )
    store.bulk_insert(calls, turns)


def test_list_filters_and_pages(store):
    now = utcnow()
    _seed(store, now)
    page = store.list_calls(limit=7)
    assert page["total"] == 30 and len(page["calls"]) == 7
    starts = [c["started_at"] for c in page["calls"]]
    assert starts == sorted(starts, reverse=True)
    ids = [c["id"] for p in range(5) for c in store.list_calls(limit=7, offset=7 * p)["calls"]]
    assert sorted(ids) == sorted(f"k{i:02d}" for i in range(30))  # pages cover all, no repeats

    assert store.list_calls(CallFilter(outcome="escalated"))["total"] == 10
    assert store.list_calls(CallFilter(transport="webrtc"))["total"] == 6
    assert store.list_calls(CallFilter(intent="billing"))["total"] == 8
    assert store.list_calls(CallFilter(since=now - timedelta(days=2, hours=1)))["total"] == 9
    both = CallFilter(outcome="resolved", intent="billing")
    assert {c["id"] for c in store.list_calls(both)["calls"]} == {"k00", "k12", "k24"}


def test_stats_aggregate_outcomes_intents_confidence_and_latency(store):
    now = utcnow()
    _seed(store, now)
    stats = store.stats(CallFilter(since=now - timedelta(days=30)))
    totals = stats["totals"]
    assert totals["calls"] == 30 and totals["escalated"] == 10
    assert totals["resolution_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert sum(d["calls"] for d in stats["per_day"]) == 30
    assert {r["intent"]: r["count"] for r in stats["intents"]} == {
        "billing": 8,
        "opening_hours": 22,
    }
    assert stats["escalation_reasons"] == [{"reason": "asked for a person", "count": 10}]
    bins = {b["low"]: b for b in stats["confidence_histogram"]}
    assert bins[0.4]["count"] == 8 and bins[0.4]["repair"] == 8
    assert bins[0.9]["count"] == 22 and bins[0.9]["act"] == 22
    total = stats["latency"]["overall"]["total"]
    assert 400 <= total["p50"] <= 700 and total["p50"] < total["p95"] <= 700
    assert stats["latency"]["overall"]["stt"]["p50"] == pytest.approx(60, abs=5)
    slowest = stats["slowest_turns"]
    assert slowest[0]["call_id"] == "k29" and slowest[0]["latency_ms"] == 690.0
    # Filters apply to stats too, and a second read (past days cached) agrees.
    assert store.stats(CallFilter(since=now - timedelta(days=30)))["totals"] == totals
    webrtc = store.stats(CallFilter(since=now - timedelta(days=30), transport="webrtc"))
    assert webrtc["totals"]["calls"] == 6


def test_a_late_record_for_a_past_day_refreshes_cached_stats(store):
    now = utcnow()
    _seed(store, now)
    window = CallFilter(since=now - timedelta(days=30))
    before = store.stats(window)["totals"]["calls"]
    store.start_call(CallStart("late", "twilio", started_at=now - timedelta(days=3)))
    store.flush()
    assert store.stats(window)["totals"]["calls"] == before + 1


def test_a_refused_record_is_kept_aside_and_the_rest_are_written(tmp_path):
    store = CallStore.open(sqlite_url(tmp_path / "calls.db"), spool_dir=tmp_path)
    try:
        store.start_call(CallStart("ok", "twilio"))
        store.save_turn(TurnRecord("no-such-call", 1, caller_text="x"))  # foreign key fails
        store.save_turn(TurnRecord("ok", 1, caller_text="fine"))
        assert store.flush()
        assert [t["caller_text"] for t in store.get_call("ok")["turns"]] == ["fine"]
        rejected = (tmp_path / "records-rejected.jsonl").read_text().splitlines()
        assert json.loads(rejected[0])["record"]["call_id"] == "no-such-call"
        assert store.writer.stats.rejected == 1
    finally:
        store.close()


def test_records_wait_in_the_spool_while_the_database_is_down(tmp_path):
    written: list = []
    down = True

    def apply(ops):
        if down:
            raise OperationalError("INSERT", {}, Exception("connection refused"))
        written.extend(ops)

    writer = RecordWriter(apply, spool=Spool(tmp_path), retry_secs=0.05)
    try:
        for seq in range(3):
            writer.submit("turn", TurnRecord("c", seq))
        assert writer.flush(5)
        assert written == [] and writer.backlog == 3
        down = False
        writer.submit("turn", TurnRecord("c", 3))
        assert writer.flush(5)
        assert [r.seq for _, r in written] == [0, 1, 2, 3]  # in order, none lost
        assert writer.backlog == 0
    finally:
        writer.close()


def test_processes_sharing_a_spool_take_turns_so_none_drops_the_other_records(tmp_path):
    """Two servers on one data folder: one replays the spool while the other spools more."""
    written: list = []
    replaying = threading.Event()
    other_spooled = threading.Event()

    def apply_here(ops):  # this process reached the database again, slowly
        replaying.set()
        other_spooled.wait(2)
        written.extend(ops)

    def apply_there(ops):  # the other one still cannot reach it
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    there = RecordWriter(apply_there, spool=Spool(tmp_path), retry_secs=0.05)
    there.submit("turn", TurnRecord("there", 0))
    assert there.flush(5) and Spool(tmp_path).read()
    wake = Chore(0.05, lambda: None, "tick")  # servers always have chores (the heartbeat)
    here = RecordWriter(apply_here, spool=Spool(tmp_path), retry_secs=0.05, chores=[wake])
    try:
        assert replaying.wait(5)  # here: the spool is read, its writing under way
        there.submit("turn", TurnRecord("there", 1))  # there: spooled behind it (or waits its turn)
        time.sleep(0.3)
        other_spooled.set()
        deadline = time.monotonic() + 10
        while sorted(r.seq for _, r in written) != [0, 1]:
            assert time.monotonic() < deadline, f"records lost: {written}"
            time.sleep(0.05)
    finally:
        there.close(1)
        here.close(5)


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pipecat.frames.frames import (BotStartedSpeakingFrame, BotStoppedSpeakingFrame,
        StartFrame, TranscriptionFrame, TTSSpeakFrame)
    from integrations.storage import CallStore
    from integrations.storage.engine import sqlite_url
    from processors.call_recorder import CallRecorder
    from processors.frames import Band, NLUResultFrame

    store = CallStore.open(sqlite_url(sys.argv[1]))
    rec = CallRecorder(store, call_id="crash", transport="twilio")
    rec.observe(StartFrame())
    for i in range(3):
        rec.observe(TranscriptionFrame(f"question {i}", "u", "t"))
        rec.observe(NLUResultFrame(text=f"question {i}", intent="opening_hours",
                                   confidence=0.9, band=Band.ACT))
        rec.observe(TTSSpeakFrame(f"answer {i}"))
        rec.observe(BotStartedSpeakingFrame())
        rec.observe(BotStoppedSpeakingFrame())
    rec.observe(NLUResultFrame(text="in flight", intent="prices", confidence=0.9))
    store.flush()
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_killed_process_loses_at_most_the_turn_in_flight(tmp_path):
    db = tmp_path / "calls.db"
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(db)],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        env={**os.environ, "LOGURU_LEVEL": "WARNING"},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    store = CallStore.open(sqlite_url(db))
    try:
        call = store.get_call("crash")
        assert call["outcome"] == "in_progress"
        assert [t["caller_text"] for t in call["turns"]] == [f"question {i}" for i in range(3)]
        assert all(t["bot_text"] for t in call["turns"])
        assert store.close_stale(older_than=timedelta(0)) == 1
        assert store.get_call("crash")["outcome"] == "failed"
    finally:
        store.close()


def test_caller_id_policies():
    hashed = HashedCallerId("salt")
    assert hashed.store("+1 (555) 010-0042") == hashed.store("+15550100042")
    assert hashed.store("+15550100042").startswith("sha256:")
    assert "555" not in hashed.store("+15550100042")
    assert HashedCallerId("other").store("+15550100042") != hashed.store("+15550100042")
    assert RedactedCallerId().store("+1 555 010 0042") == "***42"
    assert PlainCallerId().store("+15550100042") == "+15550100042"
    assert hashed.store(None) is None


def test_exports(tmp_path):
    with open_store("sqlite", tmp_path) as store:
        _seed(store, utcnow())
        calls = list(store.iter_calls(CallFilter(), batch=7))
        assert len(calls) == 30
        ticks = []
        out = io.StringIO()
        assert EXPORTERS["jsonl"]().write(calls, out, lambda: ticks.append(1)) == 30
        lines = out.getvalue().splitlines()
        assert len(lines) == 30 == len(ticks)
        assert json.loads(lines[0])["turns"][0]["intent"] in ("billing", "opening_hours")
        out = io.StringIO()
        EXPORTERS["csv"]().write(calls, out, lambda: None)
        rows = list(csv.DictReader(io.StringIO(out.getvalue())))
        assert (
            len(rows) == 30 and rows[0]["call_id"].startswith("k") and rows[0]["stt_ms"] == "60.0"
        )


def test_parse_time_accepts_durations_dates_and_iso():
    now = utcnow()
    assert abs((now - parse_time("7d", now=now)) - timedelta(days=7)) < timedelta(seconds=1)
    assert parse_time("2026-11-01").day == 1
    assert parse_time("2026-11-01T10:00:00+02:00").hour == 8
    with pytest.raises(ValueError, match="7d"):
        parse_time("last week")
