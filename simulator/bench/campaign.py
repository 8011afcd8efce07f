"""``callagent bench campaign``: a campaign of N contacts through the real job queue.

Worker processes (``python -m simulator.queue_worker``: the runner and huey's consumer as
``callagent worker`` runs them) dial on the simulator's network, whose callees answer after
a random short delay with a random outcome; no-answer, busy and voicemail are retried
after short delays. Prints wall time, dials per second, the most calls in flight at once
against the cap, dials placed twice (must be 0), dials outside the calling window (must be
0) and the outcomes. ``--backend redis --processes 2`` runs two workers on a local Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.outbound.loop_bridge import LoopBridge
from integrations.outbound.queue import make_huey
from integrations.outbound.store import Attempt
from integrations.storage import migrate
from integrations.storage.engine import make_engine, sqlite_url
from simulator.campaign_double import SimpleCampaignStore
from simulator.fake_dialer import FakeCallees
from simulator.queue_worker import sim_runner
from simulator.redis_server import local_redis

ROOT = Path(__file__).resolve().parents[2]
RETRIES = {"no-answer": (2, 2.0), "busy": (3, 1.0), "voicemail-left": (1, 4.0)}
"""The reference retry rules (twice after 30 min, ...) scaled down to seconds."""


def add_parser(kinds: argparse._SubParsersAction) -> None:
    """Register ``callagent bench campaign``."""
    p = kinds.add_parser("campaign", help="a campaign of N contacts through the job queue")
    p.add_argument("--contacts", type=int, default=200)
    p.add_argument("--backend", choices=["sqlite", "redis"], default="sqlite")
    p.add_argument("--redis-url", help="a running Redis (default: start a local redis-server)")
    p.add_argument("--processes", type=int, default=1, help="worker processes")
    p.add_argument("--threads", type=int, default=4, help="worker threads per process")
    p.add_argument("--max-concurrent", type=int, default=20)
    p.add_argument("--cps", type=float, default=10.0, help="calls per second, at most")
    p.add_argument("--answer", type=float, nargs=2, default=(0.5, 3.0), metavar=("MIN", "MAX"))
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--json", type=Path, help="also save the results as JSON here")
    p.set_defaults(func=run)


@contextmanager
def _queue(args: argparse.Namespace, tmp: Path) -> Iterator[str]:
    if args.backend == "sqlite":
        yield f"sqlite:///{tmp / 'queue.db'}"
    elif args.redis_url:
        yield args.redis_url
    else:
        with local_redis() as url:
            yield url


def run(args: argparse.Namespace) -> int:
    """Run the bench and print its figures."""
    with tempfile.TemporaryDirectory(prefix="callagent-bench-campaign-") as tmp_name:
        tmp = Path(tmp_name)
        with _queue(args, tmp) as url:
            results = _bench(args, tmp, url)
    _print(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _bench(args: argparse.Namespace, tmp: Path, url: str) -> dict[str, Any]:
    db = sqlite_url(tmp / "calls.db")
    engine = make_engine(db)
    migrate.upgrade(engine)
    store = SimpleCampaignStore(engine)
    dial_log = tmp / "dials.db"
    loop = LoopBridge.own()
    server_side = sim_runner(make_huey(url), engine, dial_log, loop)
    callees = FakeCallees(
        store.attempts, dial_log, server_side.attempt_ended, answer_s=tuple(args.answer)
    )
    window = (0, 24)
    campaign_id = store.create(
        [f"+1555{2000000 + i:07d}" for i in range(args.contacts)],
        max_concurrent=args.max_concurrent,
        calls_per_second=args.cps,
        retries=RETRIES,
        window_hours=window,
    )
    command = [sys.executable, "-m", "simulator.queue_worker", "--db", db, "--queue", url]
    command += ["--dials", str(dial_log), "--workers", str(args.threads)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
        for _ in range(args.processes)
    ]
    callees.start()
    started = time.monotonic()
    try:
        server_side.kick_campaign(campaign_id)
        deadline = started + args.timeout
        while any(c["state"] != "done" for c in store.contacts(campaign_id)):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        wall_s = time.monotonic() - started
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        callees.stop()
        loop.close()
    attempts = store.attempts.attempts(campaign_id=campaign_id, limit=100_000)
    with sqlite3.connect(dial_log) as conn:
        placed = conn.execute("select contact_id, number, dialed_at from dials").fetchall()
    contacts = store.contacts(campaign_id)
    engine.dispose()
    return {
        "backend": args.backend,
        "processes": args.processes,
        "threads": args.threads,
        "contacts": args.contacts,
        "max_concurrent": args.max_concurrent,
        "cps_limit": args.cps,
        "wall_s": round(wall_s, 1),
        "dials": len(placed),
        "dials_per_s": round(len(placed) / wall_s, 2),
        "most_in_flight": most_in_flight(attempts),
        "duplicates": sum(n - 1 for n in Counter((c, n) for c, n, _t in placed).values()),
        "outside_window": sum(
            not window[0] <= datetime.fromtimestamp(t, UTC).hour < window[1] for *_k, t in placed
        ),
        "unfinished": sum(c["state"] != "done" for c in contacts),
        "final_outcomes": dict(Counter(c["disposition"] for c in contacts).most_common()),
        "attempt_outcomes": dict(Counter(a.disposition for a in attempts).most_common()),
    }


def most_in_flight(attempts: list[Attempt]) -> int:
    """The most attempts claimed and not yet ended at one moment."""
    edges: list[tuple[datetime, int]] = []
    for a in attempts:
        if a.created_at is not None and a.ended_at is not None:
            edges += [(a.created_at, 1), (a.ended_at, -1)]
    level = peak = 0
    for _when, step in sorted(edges, key=lambda e: (e[0], e[1])):
        level += step
        peak = max(peak, level)
    return peak


def _print(r: dict[str, Any]) -> None:
    print(
        f"campaign bench: {r['contacts']} contacts, {r['backend']} queue, "
        f"{r['processes']} worker process(es) x {r['threads']} threads, "
        f"cap {r['max_concurrent']}, {r['cps_limit']} calls/s"
    )
    print(f"  wall time            {r['wall_s']} s ({r['unfinished']} contacts unfinished)")
    print(f"  dials                {r['dials']} ({r['dials_per_s']} per second)")
    print(f"  most in flight       {r['most_in_flight']} (cap {r['max_concurrent']})")
    print(f"  dialled twice        {r['duplicates']}")
    print(f"  outside the window   {r['outside_window']}")
    print("  final outcome        contacts")
    for outcome, n in r["final_outcomes"].items():
        print(f"    {outcome:<18} {n}")
    print("  attempt outcome      attempts")
    for outcome, n in r["attempt_outcomes"].items():
        print(f"    {outcome!s:<18} {n}")
