"""What the record journal costs the call: the time ``save_turn`` takes on the event loop.

    PYTHONPATH=. python scripts/bench_record_journal.py [--turns 2000] [--dir /tmp/x]

Saves realistic turn records through a SQLite call store three ways: no journal (before
crash recovery), the journal flushed to the OS (default, survives a killed process) and
fsync'd to disk (survives a power cut), and prints per-turn milliseconds (median, p95,
p99, max). Each finished turn is one ``save_turn``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from integrations.storage import CallStart, CallStore, TurnRecord
from integrations.storage.engine import sqlite_url
from integrations.storage.journal import JOURNAL_SYNC
from integrations.storage.workers import WorkerConfig


def turn(call_id: str, seq: int) -> TurnRecord:
    """A turn record the size of a real one."""
    return TurnRecord(
        call_id,
        seq,
        caller_text="Hi, um, I was hoping to move my appointment to Thursday afternoon please",
        bot_text="Sure. I can move your appointment to Thursday at 2 pm. Shall I do that?",
        intent="reschedule",
        confidence=0.91,
        runner_up="cancel",
        margin=0.42,
        band="act",
        path="classifier",
        entities={"date": "2026-12-10", "time": "14:00"},
        reply_intent="reschedule",
        latency_ms=812.0,
        stages_ms={"endpointing": 210.0, "stt": 120.0, "llm": 15.0, "tts": 300.0},
        nlu_ms=11.0,
    )


def run(folder: Path, mode: str, turns: int) -> list[float]:
    """Milliseconds each ``save_turn`` took, with ``mode`` = none, flush or fsync."""
    folder.mkdir(parents=True, exist_ok=True)
    store = CallStore.open(
        sqlite_url(folder / "calls.db"),
        spool_dir=folder,
        worker=None if mode == "none" else WorkerConfig(),
        journal_sync=None if mode == "none" else JOURNAL_SYNC[mode](),
    )
    try:
        store.writer.ready.wait(30)
        store.start_call(CallStart("bench", "twilio"))
        store.flush()
        times: list[float] = []
        for seq in range(turns):
            record = turn("bench", seq)
            started = time.perf_counter()
            store.save_turn(record)
            times.append(1000 * (time.perf_counter() - started))
            if seq % 20 == 19:
                store.flush()  # turns are seconds apart: the writer keeps up between them
        store.flush()
        return times
    finally:
        store.close()


def main() -> None:
    """Run the three modes and print a table."""
    parser = argparse.ArgumentParser(description="What the record journal costs per turn.")
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: /tmp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print(f"{'journal':8} {'median':>8} {'p95':>8} {'p99':>8} {'max':>8}  (ms per turn)")
        for mode in ("none", "flush", "fsync"):
            ms = sorted(run(Path(tmp) / mode, mode, args.turns))
            q = statistics.quantiles(ms, n=100)
            print(f"{mode:8} {statistics.median(ms):8.3f} {q[94]:8.3f} {q[98]:8.3f} {ms[-1]:8.3f}")


if __name__ == "__main__":
    main()
