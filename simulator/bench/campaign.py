"""``callagent bench campaign``: a campaign of N contacts through the real job queue.

Worker processes (``python -m simulator.queue_worker``: the runner and huey's consumer as
``callagent worker`` runs them, on the shipped campaign store) dial on the simulator's
network, whose callees answer after a random short delay with a random outcome; no-answer,
busy and voicemail are retried after short delays. The calling window is 08:00-20:00 every
day in the callee's time: most contacts live in a zone where it is early afternoon now,
``--closed-share`` of them in one where it is the middle of the night, so they must wait
(they are never dialled during the bench). Prints wall time, dials per second, the most
calls in flight at once against the cap, dials placed twice (must be 0), dials outside
the callee's calling window (must be 0) and the outcomes. ``--backend redis
--processes 2`` runs two workers on a local Redis.
"""

from __future__ import annotations

import argparse
import asyncio
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.outbound.loop_bridge import LoopBridge
from integrations.outbound.campaign_types import DIALING, PENDING
from integrations.outbound.campaigns import CampaignStore
from integrations.outbound.queue import make_huey
from integrations.storage import migrate
from integrations.storage.engine import make_engine, sqlite_url
from simulator.bench.campaign_window import (
    CLOSED_HOUR,
    OPEN_HOUR,
    WINDOWS,
    most_in_flight,
    zone_at,
)
from simulator.fake_dialer import FakeCallees
from simulator.queue_worker import sim_campaign, sim_rules, sim_runner
from simulator.redis_server import local_redis

ROOT = Path(__file__).resolve().parents[2]
RETRIES = ("no-answer=2x2s", "busy=3x1s", "voicemail-left=1x4s", "failed=2x1s")
"""The reference retry rules (twice after 30 min, ...) scaled down to seconds."""


def add_parser(kinds: argparse._SubParsersAction) -> None:
    """Register ``callagent bench campaign``."""
    p = kinds.add_parser("campaign", help="a campaign of N contacts through the job queue")
    p.add_argument("--contacts", type=int, default=200)
    p.add_argument("--backend", choices=["sqlite", "redis"], default="sqlite")
    p.add_argument("--redis-url", help="a running Redis (default: start a local redis-server)")
    p.add_argument(
        "--via",
        choices=["queue", "twilio-sim"],
        default="queue",
        help="queue: a stand-in dialler in the worker processes; twilio-sim: the real agent "
        "places real calls through the simulator's fake Twilio to simulated callees",
    )
    p.add_argument(
        "--processes",
        type=int,
        help="worker processes (default 1; twilio-sim: 0 = the server's own consumer)",
    )
    p.add_argument("--threads", type=int, default=4, help="worker threads per process")
    p.add_argument("--max-concurrent", type=int, default=20)
    p.add_argument("--cps", type=float, default=10.0, help="calls per second, at most")
    p.add_argument("--answer", type=float, nargs=2, default=(0.5, 3.0), metavar=("MIN", "MAX"))
    p.add_argument(
        "--closed-share", type=float, default=0.1, help="contacts whose window is closed now"
    )
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--seed", type=int, default=17, help="twilio-sim: the callees' draw")
    p.add_argument("--verbose", action="store_true", help="twilio-sim: the agent's log")
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
    if args.via == "twilio-sim":
        return _run_via_twilio(args)
    args.processes = args.processes or 1
    with tempfile.TemporaryDirectory(prefix="callagent-bench-campaign-") as tmp_name:
        tmp = Path(tmp_name)
        with _queue(args, tmp) as url:
            results = _bench(args, tmp, url)
    _print(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _run_via_twilio(args: argparse.Namespace) -> int:
    from simulator.bench.args import quiet_logs
    from simulator.bench.campaign_calls import print_figures, run_via_twilio

    quiet_logs(args.verbose)
    results = asyncio.run(run_via_twilio(args))
    print_figures(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _bench(args: argparse.Namespace, tmp: Path, url: str) -> dict[str, Any]:
    db = sqlite_url(tmp / "calls.db")
    engine = make_engine(db)
    migrate.upgrade(engine)
    store = CampaignStore(engine)
    dial_log = tmp / "dials.db"
    loop = LoopBridge.own()
    server_side = sim_runner(make_huey(url), engine, dial_log, loop)
    callees = FakeCallees(
        store.outbound, dial_log, server_side.attempt_ended, answer_s=tuple(args.answer)
    )
    now = datetime.now(UTC)
    closed = round(args.contacts * args.closed_share)
    zones = [zone_at(CLOSED_HOUR, now)] * closed
    zones += [zone_at(OPEN_HOUR, now)] * (args.contacts - closed)
    rules = sim_rules(
        RETRIES, windows=WINDOWS, max_concurrent=args.max_concurrent, calls_per_second=args.cps
    )
    campaign_id = sim_campaign(
        store, [f"+1555{2000000 + i:07d}" for i in range(args.contacts)], rules, timezones=zones
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
        while not _settled(store, campaign_id, now):
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
    attempts = store.outbound.attempts(campaign_id=campaign_id, limit=100_000)
    with sqlite3.connect(dial_log) as conn:
        placed = conn.execute("select contact_id, number, dialed_at from dials").fetchall()
    contacts = list(store.iter_contacts(campaign_id))
    engine.dispose()
    zone_of = {c.id: c.timezone for c in contacts}
    windows = rules.calling_windows
    waiting = [c for c in contacts if c.state == PENDING and _held(c.next_at, now)]
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
            not windows.is_open(datetime.fromtimestamp(t, UTC), zone_of[c]) for c, _n, t in placed
        ),
        "window_closed_contacts": closed,
        "waiting_for_window": len(waiting),
        "waiting_dialled": sum(c.attempts > 0 for c in waiting),
        "unfinished": sum(c.state in (PENDING, DIALING) for c in contacts) - len(waiting),
        "final_outcomes": dict(
            Counter(c.disposition for c in contacts if c not in waiting).most_common()
        ),
        "attempt_outcomes": dict(Counter(a.disposition for a in attempts).most_common()),
    }


def _held(next_at: datetime | None, now: datetime) -> bool:
    """Due well after the bench's start: held for a calling window, not a retry."""
    return next_at is not None and next_at.replace(tzinfo=UTC) > now + timedelta(hours=1)


def _settled(store: CampaignStore, campaign_id: str, now: datetime) -> bool:
    """Every contact final, or waiting for its window to open."""
    return all(
        c.state not in (PENDING, DIALING) or (c.state == PENDING and _held(c.next_at, now))
        for c in store.iter_contacts(campaign_id)
    )


def _print(r: dict[str, Any]) -> None:
    print(
        f"campaign bench: {r['contacts']} contacts, {r['backend']} queue, "
        f"{r['processes']} worker process(es) x {r['threads']} threads, "
        f"cap {r['max_concurrent']}, {r['cps_limit']} calls/s"
    )
    print(f"  wall time            {r['wall_s']} s ({r['unfinished']} contacts unfinished)")
    print(
        f"  window closed        {r['window_closed_contacts']} contacts, "
        f"{r['waiting_for_window']} waiting for it, {r['waiting_dialled']} dialled"
    )
    print(f"  dials                {r['dials']} ({r['dials_per_s']} per second)")
    print(f"  most in flight       {r['most_in_flight']} (cap {r['max_concurrent']})")
    print(f"  dialled twice        {r['duplicates']}")
    print(f"  outside the window   {r['outside_window']} (in the callee's time zone)")
    print("  final outcome        contacts")
    for outcome, n in r["final_outcomes"].items():
        print(f"    {outcome:<18} {n}")
    print("  attempt outcome      attempts")
    for outcome, n in r["attempt_outcomes"].items():
        print(f"    {outcome!s:<18} {n}")
