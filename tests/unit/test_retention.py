"""Retention: old call records are deleted or anonymised, new ones are left alone.

On SQLite and (when CI started one) PostgreSQL; through ``CallStore.purge``, the
``callagent calls purge`` command and the server's retention job.
"""

import time
from datetime import timedelta
from typing import Any

import pytest

from bot.call.records import open_call_records
from bot.cli import main
from bot.settings import Settings, SettingsError
from integrations.storage import CallFilter, CallStore
from integrations.storage.engine import sqlite_url
from integrations.storage.records import utcnow
from tests.support.records import call_row, open_store, turn_row

SUMMARY = {"caller": {"name": "Maria Garcia", "phone": "+15555550123"}, "reason": "x"}


def seed(store: CallStore) -> None:
    """Old calls (100 days, one never ended), new ones (1 day), one running now."""
    now = utcnow()
    calls, turns = [], []
    for i, (age, outcome) in enumerate(
        [
            (timedelta(days=100), "escalated"),
            (timedelta(days=100), "resolved"),
            (timedelta(days=100), None),  # never ended (a killed process)
            (timedelta(days=1), "escalated"),
            (timedelta(days=1), "resolved"),
            (timedelta(minutes=5), None),  # in progress
        ]
    ):
        started = now - age
        calls.append(
            call_row(
                f"r{i}",
                started,
                outcome=outcome,
                caller="sha256:abc",
                escalation_trigger="explicit_request" if outcome == "escalated" else None,
                escalation_summary=SUMMARY if outcome == "escalated" else None,
            )
        )
        turns += [
            turn_row(f"r{i}", seq, started + timedelta(seconds=seq), caller_text="it's Maria")
            for seq in (1, 2)
        ]
    store.bulk_insert(calls, turns)


def call(store: CallStore, call_id: str) -> dict[str, Any]:
    found = store.get_call(call_id)
    assert found is not None, call_id
    return found


def ids(store: CallStore) -> set[str]:
    return {c["id"] for c in store.list_calls(limit=100)["calls"]}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_delete_removes_old_calls_and_leaves_new_ones(backend, tmp_path):
    with open_store(backend, tmp_path) as store:
        seed(store)
        cutoff = utcnow() - timedelta(days=30)
        dry = store.purge(cutoff, "delete", dry_run=True)
        assert (dry.calls, dry.turns, dry.dry_run) == (3, 6, True)
        assert len(ids(store)) == 6  # a dry run changes nothing

        done = store.purge(cutoff, "delete")
        assert (done.calls, done.turns) == (3, 6)
        assert ids(store) == {"r3", "r4", "r5"}
        assert all(len(call(store, i)["turns"]) == 2 for i in ids(store))
        # nothing but a call that may still be running survives a purge of everything
        assert store.purge(utcnow(), "delete").calls == 2
        assert ids(store) == {"r5"}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_anonymise_clears_personal_data_and_keeps_the_statistics(backend, tmp_path):
    with open_store(backend, tmp_path) as store:
        seed(store)
        cutoff = utcnow() - timedelta(days=30)
        before = store.stats(CallFilter())
        done = store.purge(cutoff, "anonymise")
        assert (done.calls, done.turns) == (3, 6)

        old = call(store, "r0")
        assert old["caller"] is None and old["escalation"]["summary"] == {}
        assert old["escalation"]["trigger"] == "explicit_request"
        for turn in old["turns"]:
            assert turn["caller_text"] is None and turn["bot_text"] is None
            assert turn["entities"] == {}
            assert turn["intent"] == "opening_hours" and turn["latency_ms"] == 400.0
        new = call(store, "r3")
        assert new["caller"] == "sha256:abc" and new["escalation"]["summary"] == SUMMARY
        assert new["turns"][0]["caller_text"] == "it's Maria"
        after = store.stats(CallFilter())
        assert after["totals"] == before["totals"]
        # a second run finds nothing left to clear
        assert store.purge(cutoff, "anonymise", dry_run=True).calls == 0


def test_calls_purge_command(data_dir, monkeypatch, capsys):
    store = CallStore.open(sqlite_url(data_dir / "calls.db"))
    seed(store)
    store.close()

    assert main(["calls", "purge"]) == 2
    assert "--older-than" in capsys.readouterr().err

    assert main(["calls", "purge", "--older-than", "30d", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "3 calls and 6 turns started before" in out and "would be deleted" in out

    assert main(["calls", "purge", "--older-than", "30d", "--anonymise"]) == 0
    out = capsys.readouterr().out
    assert "3 calls and 6 turns" in out and "anonymised" in out

    monkeypatch.setenv("CALLAGENT_RETENTION_DAYS", "30")
    assert main(["calls", "purge"]) == 0  # the setting's period and action (delete)
    out = capsys.readouterr().out
    assert "3 calls and 6 turns" in out and out.rstrip().endswith(" deleted")
    assert main(["calls", "purge", "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("0 calls and 0 turns")

    assert main(["calls", "purge", "--older-than", "nonsense"]) == 2
    assert "--older-than 'nonsense': use a duration ago" in capsys.readouterr().err


def test_the_server_applies_the_retention_setting_in_the_background(data_dir, monkeypatch):
    store = CallStore.open(sqlite_url(data_dir / "calls.db"))
    seed(store)
    store.close()
    monkeypatch.setenv("CALLAGENT_RETENTION_DAYS", "30")
    monkeypatch.setenv("CALLAGENT_RETENTION_ACTION", "anonymise")

    records = open_call_records(Settings.load())
    try:
        assert records.retention is not None
        deadline = time.monotonic() + 30
        while records.retention.runs < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert call(records.store, "r0")["caller"] is None
        assert call(records.store, "r3")["caller"] == "sha256:abc"
    finally:
        if records.retention is not None:
            records.retention.stop()
        records.store.close()


def test_no_retention_job_by_default(data_dir):
    records = open_call_records(Settings.load())
    try:
        assert records.retention is None
    finally:
        records.store.close()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CALLAGENT_RETENTION_DAYS": "-1"}, "CALLAGENT_RETENTION_DAYS=-1"),
        ({"CALLAGENT_RETENTION_ACTION": "shred"}, "'delete' or 'anonymise'"),
    ],
)
def test_bad_retention_settings_are_named(data_dir, env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.load(env)
