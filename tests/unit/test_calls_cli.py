"""`callagent calls list|show|export`, `callagent db`, `callagent nlu calibrate --from-calls`."""

import csv
import json
from datetime import timedelta

from bot.cli import main
from integrations.storage import CallStore
from integrations.storage.engine import sqlite_url
from integrations.storage.migrate import head_revision
from integrations.storage.records import utcnow
from simulator.synthetic_records import synthetic_calls
from tests.support.records import call_row, turn_row


def seed(data_dir, n=25):
    store = CallStore.open(sqlite_url(data_dir / "calls.db"))
    now = utcnow()
    calls = [
        call_row(
            f"x{i:02d}",
            now - timedelta(hours=i + 1),
            outcome="escalated" if i % 5 == 0 else "resolved",
            primary_intent="opening_hours",
        )
        for i in range(n)
    ]
    turns = [
        turn_row(
            f"x{i:02d}",
            1,
            now - timedelta(hours=i + 1) + timedelta(seconds=2),
            caller_text=f"question {i}",
        )
        for i in range(n)
    ]
    store.bulk_insert(calls, turns)
    store.close()


def test_db_upgrade_then_current(data_dir, capsys):
    assert main(["db", "upgrade"]) == 0
    assert f"empty -> {head_revision()}" in capsys.readouterr().out
    assert main(["db", "current"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_calls_list_pages_and_filters(data_dir, capsys):
    seed(data_dir)
    assert main(["calls", "list", "--limit", "10"]) == 0
    out = capsys.readouterr().out
    assert "x00" in out and "1-10 of 25 calls" in out and "--offset 10" in out
    assert main(["calls", "list", "--outcome", "escalated", "--json"]) == 0
    page = json.loads(capsys.readouterr().out)
    assert page["total"] == 5 and {c["outcome"] for c in page["calls"]} == {"escalated"}
    assert main(["calls", "list", "--since", "3h", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 2


def test_calls_show(data_dir, capsys):
    seed(data_dir)
    assert main(["calls", "show", "x03"]) == 0
    out = capsys.readouterr().out
    assert "call x03" in out and "caller: question 3" in out and "latency 400 ms" in out
    assert main(["calls", "show", "x03", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["turns"][0]["caller_text"] == "question 3"
    assert main(["calls", "show", "nope"]) == 1


def test_calls_export_csv_and_jsonl(data_dir, tmp_path, capsys):
    seed(data_dir)
    out_csv = tmp_path / "turns.csv"
    assert main(["calls", "export", "--format", "csv", "--since", "10h", "-o", str(out_csv)]) == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 9 and rows[0]["caller_text"].startswith("question")
    assert "exported 9 calls" in capsys.readouterr().err
    assert main(["calls", "export", "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 25 and json.loads(lines[0])["id"] == "x24"  # oldest first


def test_nlu_calibrate_from_calls(data_dir, tmp_path, capsys):
    store = CallStore.open(sqlite_url(data_dir / "calls.db"))
    calls, turns = [], []
    for call, call_turns in synthetic_calls(300, days=5):
        calls.append(call)
        turns += call_turns
    store.bulk_insert(calls, turns)
    store.close()
    svg = tmp_path / "rel.svg"
    assert (
        main(["nlu", "calibrate", "--from-calls", "--since", "7d", "--svg", str(svg), "--json"])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["labelled"] > 100 and "act accepted" in result["rules"]
    assert 0 < result["recommended_clarify"] <= 1 and svg.exists()


def test_weak_labels_follow_what_the_caller_did_next():
    from simulator.nlu.call_labels import REJECTED, RecordedTurn, weak_labels

    def t(intent, confidence, band, path="classifier"):
        return RecordedTurn(intent, confidence, band, path)

    labels = weak_labels(
        [
            [t("cancel", 0.6, "clarify"), t("affirm", 0.97, "act")],
            [t("cancel", 0.55, "clarify"), t("deny", 0.97, "act")],
            [t("prices", 0.9, "act"), t("deny", 0.9, "act")],
            [t("prices", 0.3, "repair"), t("insurance", 0.93, "act")],
            [t("hours", 0.9, "act", path="llm")],
        ]
    )
    # the rephrased request itself, acted on and not denied, is a right act as well
    assert labels.gold == ["cancel", REJECTED, REJECTED, "insurance", "insurance"]
    assert [p.intent for p in labels.predictions] == [
        "cancel",
        "cancel",
        "prices",
        "prices",
        "insurance",
    ]
