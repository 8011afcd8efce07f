"""``callagent bench records``: what call recording costs, and how fast records read back.

Three measurements, printed (never failing on slow numbers):

1. Recorder cost per turn on the event loop: the time the call recorder spends
   folding one turn's frames into the record and queueing its write.
2. Database write cost per turn, off the event loop: one commit per turn by the
   writer thread (SQLite and, with ``--postgres``, PostgreSQL).
3. Added turn latency: an NLU result's transit time through a pipeline with and
   without the recorder observing it and its SQLite store committing each turn
   (the recorder runs beside the pipeline, so the two should match).
4. The event loop's lag (a 5 ms timer) while a cold 30-day statistics read runs in
   its worker thread, as a dashboard request does beside live calls.
5. With ``--calls`` synthetic calls (default 100,000, spread over 30 days) in a
   fresh SQLite file and, with ``--postgres URL``, a scratch PostgreSQL database
   created on that server (and dropped after): response times of ``/api/calls``,
   ``/api/calls/stats``, one call, and the dashboard pages, through the real routers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from integrations.percentile import percentile

SEED_CHUNK = 5000
TOKEN = "bench-operator-token-0123456789"


def add_parser(kinds: argparse._SubParsersAction) -> None:
    """Register ``callagent bench records``."""
    records = kinds.add_parser(
        "records", help="call-record write cost per turn; API/dashboard speed at 100,000 calls"
    )
    records.add_argument(
        "--calls", type=int, default=100_000, help="synthetic calls to read back (100000)"
    )
    records.add_argument("--turns", type=int, default=500, help="turns for the write costs (500)")
    records.add_argument(
        "--postgres",
        metavar="URL",
        help="also measure PostgreSQL: a scratch database is created on this server "
        "(role needs CREATEDB) and dropped afterwards",
    )
    records.add_argument("--repeat", type=int, default=5, help="requests per endpoint (5)")
    records.add_argument("--json", type=Path, help="also save the results as JSON here")
    records.set_defaults(func=run_records)


def run_records(args: argparse.Namespace) -> int:
    """``callagent bench records``."""
    from loguru import logger

    from integrations.storage.engine import sqlite_url
    from integrations.storage.scratch import scratch_postgres_database

    logger.remove()
    results: dict[str, Any] = {"calls": args.calls, "turns": args.turns}
    with tempfile.TemporaryDirectory(prefix="callagent-bench-") as tmp:
        targets: list[tuple[str, Any]] = [
            ("sqlite", nullcontext(sqlite_url(Path(tmp) / "calls.db")))
        ]
        if args.postgres:
            targets.append(
                ("postgresql", scratch_postgres_database(args.postgres, "callagent_bench"))
            )
        results["added_latency"] = asyncio.run(_added_latency(args.turns, Path(tmp)))
        _print_added_latency(results["added_latency"])
        for name, target in targets:
            with target as url:
                results[name] = _bench_database(name, url, args, Path(tmp))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"saved {args.json}")
    return 0


def _bench_database(name: str, url: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from integrations.storage import CallStore

    print(f"\n== {name} ==")
    store = CallStore.open(url, spool_dir=tmp / f"spool-{name}")
    try:
        out: dict[str, Any] = {"write": _write_cost(store, args.turns)}
        w = out["write"]
        print(
            f"recorder on the event loop: {w['recorder_us_per_turn']:.0f} us per turn "
            f"(frames folded + write queued)"
        )
        print(
            f"database write per turn (writer thread, one commit each): "
            f"mean {w['db_ms_per_turn_mean']:.2f} ms, p95 {w['db_ms_per_turn_p95']:.2f} ms"
        )
        out["seed"] = _seed(store, args.calls)
        print(
            f"seeded {out['seed']['calls']:,} calls / {out['seed']['turns']:,} turns "
            f"in {out['seed']['secs']:.1f} s"
        )
        out["loop_lag"] = asyncio.run(_loop_lag_during_cold_stats(store))
        lag = out["loop_lag"]
        print(
            f"event-loop lag while a cold 30-day statistics read runs ({lag['secs']:.1f} s): "
            f"p99 {lag['p99_ms']:.1f} ms, max {lag['max_ms']:.1f} ms (a live call's loop)"
        )
        out["requests"] = asyncio.run(_time_requests(store, args.repeat))
        print(f"{'request':<52} {'first ms':>9} {'median ms':>10} {'max ms':>9}")
        for label, timing in out["requests"].items():
            print(
                f"{label:<52} {timing['first_ms']:>9.1f} {timing['median_ms']:>10.1f} "
                f"{timing['max_ms']:>9.1f}"
            )
        print("(first: statistics computed from the tables; then whole past days come from cache)")
        return out
    finally:
        store.close()


# 1-2. Write cost


def _turn_frames(seq: int) -> list[Any]:
    from pipecat.frames.frames import (
        BotStartedSpeakingFrame,
        BotStoppedSpeakingFrame,
        TranscriptionFrame,
        TTSSpeakFrame,
    )

    from processors.frames import Band, BotReplyFrame, DecisionPath, NLUResultFrame

    text = f"I would like to book an appointment for Tuesday number {seq}"
    return [
        TranscriptionFrame(text, "caller", "2026-01-01T00:00:00"),
        NLUResultFrame(
            text=text,
            intent="book_appointment",
            confidence=0.91,
            runner_up="reschedule_appointment",
            margin=0.4,
            entities={"datetime": {"text": "Tuesday", "spoken": "Tuesday at 3 PM"}},
            path=DecisionPath.CLASSIFIER,
            band=Band.ACT,
            elapsed_ms=6.2,
        ),
        BotReplyFrame(text="Booked for Tuesday at 3 PM.", intent="book_appointment"),
        TTSSpeakFrame("Booked for Tuesday at 3 PM."),
        BotStartedSpeakingFrame(),
        BotStoppedSpeakingFrame(),
    ]


_STAGES = {"endpointing": 200.0, "end_of_turn": 110.0, "stt": 60.0, "tts": 40.0, "transport": 5.0}


def _write_cost(store: Any, turns: int) -> dict[str, float]:
    from processors.call_recorder import CallRecorder

    recorder = CallRecorder(store, call_id="bench-write", transport="twilio", caller="sha256:0")
    frames = [_turn_frames(i) for i in range(turns)]
    recorder.start()
    store.flush()
    on_loop: list[float] = []
    db_ms: list[float] = []
    for i, turn_frames in enumerate(frames):
        before_ops, before_busy = store.writer.stats.ops, store.writer.stats.busy_secs
        started = time.perf_counter()
        for k, frame in enumerate(turn_frames):
            recorder.observe(frame)
            if k == 4:
                recorder.add_latency(415.0, _STAGES, "turn")
        on_loop.append(time.perf_counter() - started)
        store.flush()  # one commit per turn: the worst case for the writer
        ops = store.writer.stats.ops - before_ops
        if ops and i:
            db_ms.append(1000 * (store.writer.stats.busy_secs - before_busy))
    recorder.end("bench")
    store.flush()
    return {
        "recorder_us_per_turn": 1e6 * statistics.fmean(on_loop),
        "db_ms_per_turn_mean": statistics.fmean(db_ms) if db_ms else 0.0,
        "db_ms_per_turn_p95": percentile(db_ms, 95) if db_ms else 0.0,
        "writes_per_turn": 1.0,
    }


# 3. Added latency


async def _added_latency(turns: int, tmp: Path) -> dict[str, Any]:
    from pipecat.frames.frames import Frame
    from pipecat.observers.base_observer import BaseObserver
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.tests.utils import SleepFrame, run_test

    from integrations.storage import CallStore
    from integrations.storage.engine import sqlite_url
    from processors.call_recorder import CallRecorder
    from processors.frames import NLUResultFrame

    class Stamp(FrameProcessor):
        def __init__(self, sink: dict[int, float]):
            super().__init__()
            self._sink = sink

        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, NLUResultFrame):
                self._sink[frame.id] = time.perf_counter()
            await self.push_frame(frame, direction)

    class Probe(FrameProcessor):
        def __init__(self, starts: dict[int, float], transits: list[float]):
            super().__init__()
            self._starts, self._transits = starts, transits

        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, NLUResultFrame) and frame.id in self._starts:
                self._transits.append(time.perf_counter() - self._starts[frame.id])
            await self.push_frame(frame, direction)

    class Pass(FrameProcessor):
        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            await self.push_frame(frame, direction)

    store = CallStore.open(sqlite_url(tmp / "latency.db"), spool_dir=tmp)
    out: dict[str, Any] = {}
    n = min(turns, 200)
    try:

        def no_observers() -> list[BaseObserver]:
            return []

        def with_recorder() -> list[BaseObserver]:
            return [CallRecorder(store, call_id="bench-latency", transport="twilio")]

        for label, make_observers in (
            ("without recorder", no_observers),
            ("with recorder", with_recorder),
        ):
            starts: dict[int, float] = {}
            transits: list[float] = []
            frames: list[Any] = []
            for i in range(n):
                # NLU result, a moment of dialogue work, the reply spoken, then the
                # caller talks again (the writer commits while they do, as in a call).
                turn = _turn_frames(i)
                frames += [*turn[:2], SleepFrame(0.002), *turn[2:], SleepFrame(0.02)]
            pipeline = Pipeline([Stamp(starts), Pass(), Pass(), Pass(), Probe(starts, transits)])
            await run_test(
                pipeline,
                frames_to_send=frames,
                expected_down_frames=None,
                observers=make_observers(),
            )
            out[label] = {
                "turns": len(transits),
                "p50_ms": 1000 * percentile(transits, 50),
                "p95_ms": 1000 * percentile(transits, 95),
            }
        store.flush()
    finally:
        store.close()
    return out


def _print_added_latency(result: dict[str, Any]) -> None:
    print("== added turn latency (frame transit through a 5-processor pipeline) ==")
    for label, r in result.items():
        print(
            f"{label:<18} p50 {r['p50_ms']:.3f} ms  p95 {r['p95_ms']:.3f} ms  ({r['turns']} turns)"
        )


# 4. Reads at scale


def _seed(store: Any, n: int) -> dict[str, Any]:
    from simulator.synthetic_records import synthetic_calls

    started = time.perf_counter()
    calls: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    n_turns = 0
    for call, call_turns in synthetic_calls(n, prefix="bench"):
        calls.append(call)
        turns += call_turns
        if len(calls) >= SEED_CHUNK:
            store.bulk_insert(calls, turns)
            n_turns += len(turns)
            calls, turns = [], []
    store.bulk_insert(calls, turns)
    n_turns += len(turns)
    if store.dialect.name == "postgresql":
        from sqlalchemy import text

        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    return {"calls": n, "turns": n_turns, "secs": time.perf_counter() - started}


async def _loop_lag_during_cold_stats(store: Any) -> dict[str, float]:
    """How late a 5 ms timer fires on the event loop while statistics are computed."""
    from integrations.storage import CallFilter, parse_time

    store.stats_cache.clear()
    lags: list[float] = []
    done = False

    async def tick() -> None:
        while not done:
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - started - 0.005)

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    await asyncio.to_thread(store.stats, CallFilter(since=parse_time("30d")))
    secs = time.perf_counter() - started
    done = True
    await ticker
    lags.sort()
    return {
        "secs": secs,
        "p99_ms": 1000 * lags[int(0.99 * (len(lags) - 1))],
        "max_ms": 1000 * lags[-1],
    }


async def _time_requests(store: Any, repeat: int) -> dict[str, dict[str, float]]:
    import httpx
    from fastapi import FastAPI

    from bot.call.records import CallRecords
    from bot.operator.auth import OperatorAuth
    from bot.operator.calls_api import create_calls_router
    from bot.operator.dashboard import create_dashboard_router
    from integrations.storage.caller_id import RedactedCallerId

    records = CallRecords(store, RedactedCallerId())
    auth = OperatorAuth(TOKEN)
    app = FastAPI()
    app.include_router(create_calls_router(lambda: records, auth))
    app.include_router(create_dashboard_router(lambda: records, auth))
    some_id = store.list_calls(limit=1, offset=store.count_calls() // 2)["calls"][0]["id"]
    requests: list[tuple[str, str]] = [
        ("GET /api/calls (first page of 50)", "/api/calls"),
        (
            "GET /api/calls?outcome=escalated&intent=insurance",
            "/api/calls?outcome=escalated&intent=insurance",
        ),
        (
            "GET /api/calls?transport=twilio&offset=50000",
            "/api/calls?transport=twilio&offset=50000",
        ),
        ("GET /api/calls/{id}", f"/api/calls/{some_id}"),
        ("GET /api/calls/stats (30 days = all calls)", "/api/calls/stats"),
        ("GET /api/calls/stats?since=7d", "/api/calls/stats?since=7d"),
        ("GET /dashboard (30 days = all calls)", "/dashboard"),
        ("GET /dashboard?days=7", "/dashboard?days=7"),
        ("GET /dashboard/calls/{id}", f"/dashboard/calls/{some_id}"),
    ]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    out: dict[str, dict[str, float]] = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for label, path in requests:
            timings = []
            store.stats_cache.clear()  # every endpoint's first request starts cold
            for _ in range(max(repeat, 1)):
                started = time.perf_counter()
                response = await client.get(path, headers=headers)
                timings.append(1000 * (time.perf_counter() - started))
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: HTTP {response.status_code}")
            out[label] = {
                "first_ms": timings[0],
                "median_ms": statistics.median(timings),
                "max_ms": max(timings),
            }
    return out
