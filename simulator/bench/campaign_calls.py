"""``callagent bench campaign --via twilio-sim``: the reminder campaign through real calls.

The real agent runs as ``callagent serve`` (:class:`~simulator.local_agent.LocalAgent`, a child
process, its models loaded) with Twilio pointed at the simulator's fake REST API in this
process. The campaign is created over ``POST /api/campaigns`` for the reminder agent; its
job queue (the server's in-process consumer, or ``--processes`` ``callagent worker``
processes, on SQLite or Redis) dials each contact with ``calls.create`` on the fake, whose
callees (:mod:`simulator.bench.campaign_callees`) ring, answer by voice, take a message
after the beep, stay busy or refuse; the agent's own dialogue records each outcome and
its status callbacks apply the retry rules. Figures come from the fake (every create, each
call's live span) and the agent's database (attempts, dispositions).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from integrations.outbound.campaign_types import DIALING, PENDING
from integrations.outbound.rules import CampaignRules
from integrations.outbound.store import Attempt, OutboundStore
from integrations.storage.engine import make_engine, sqlite_url
from simulator.bench.campaign_callees import EXPECTED, SimContact, draw_contacts
from simulator.bench.campaign_window import (
    CLOSED_HOUR,
    OPEN_HOUR,
    WINDOWS,
    most_in_flight,
    zone_at,
)
from simulator.local_agent import LocalAgent
from simulator.outbound.dialed_call import DialedCall
from simulator.redis_server import local_redis

AGENT = "appointment_reminders"
RETRIES = ("no-answer=2x3s", "busy=2x2s", "voicemail-left=1x5s", "failed=1x2s")
"""The reference rules (no-answer twice after 30 min, ...) scaled down to seconds."""
ROOT = Path(__file__).resolve().parents[2]


async def run_via_twilio(args: argparse.Namespace) -> dict[str, Any]:
    """Run the campaign on the simulated network; returns the figures."""
    windows = WINDOWS
    contacts = draw_contacts(args.contacts, args.seed)
    now = datetime.now(UTC)
    rng = random.Random(args.seed)
    closed = set(rng.sample(range(len(contacts)), round(len(contacts) * args.closed_share)))
    zones = [zone_at(CLOSED_HOUR if i in closed else OPEN_HOUR, now) for i in range(len(contacts))]
    if args.backend == "redis" and args.redis_url:
        return await _bench(args, contacts, zones, windows, args.redis_url)
    if args.backend == "redis":
        with local_redis() as redis_url:
            return await _bench(args, contacts, zones, windows, redis_url)
    with tempfile.TemporaryDirectory(prefix="callagent-bench-calls-") as tmp:
        return await _bench(args, contacts, zones, windows, f"sqlite:///{Path(tmp) / 'queue.db'}")


async def _bench(
    args: argparse.Namespace,
    contacts: list[SimContact],
    zones: list[str],
    windows: dict[str, list[str]],
    queue_url: str,
) -> dict[str, Any]:
    processes = args.processes or 0
    env = {
        "CALLAGENT_QUEUE_URL": queue_url,
        "CALLAGENT_QUEUE_IN_PROCESS": "false" if processes else "true",
        "CALLAGENT_QUEUE_WORKERS": str(args.threads),
    }
    print("starting the agent (callagent serve, loading models)...", file=sys.stderr, flush=True)
    local = LocalAgent(mode="process", env=env, verbose=args.verbose)
    await local.start()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        worker_env = {**os.environ, **local.settings_env(), "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "bot.cli", "worker", "--workers", str(args.threads)]
        workers = [
            subprocess.Popen(command, cwd=ROOT, env=worker_env, stderr=subprocess.DEVNULL)
            for _ in range(processes)
        ]
        for contact in contacts:
            local.rest.dialer.register(contact.phone, *contact.callees)
        headers = {"Authorization": f"Bearer {local.operator_token}"}
        async with httpx.AsyncClient(base_url=local.base_url, headers=headers, timeout=60) as api:
            rules = {
                "windows": windows,
                "max_concurrent": args.max_concurrent,
                "calls_per_second": args.cps,
                "retries": list(RETRIES),
            }
            rows = [c.row(zone) for c, zone in zip(contacts, zones, strict=True)]
            body = {"agent": AGENT, "name": "bench", "rules": rules, "rows": rows}
            started = time.monotonic()
            created = await api.post("/api/campaigns", json=body)
            created.raise_for_status()
            campaign_id = created.json()["id"]
            final = await _wait_settled(api, campaign_id, started, args.timeout)
            wall_s = time.monotonic() - started
        engine = make_engine(
            sqlite_url(Path(local.settings_env()["CALLAGENT_DATA_DIR"]) / "calls.db")
        )
        attempts = OutboundStore(engine).attempts(campaign_id=campaign_id, limit=100_000)
        engine.dispose()
        return _figures(args, contacts, zones, windows, final, attempts, local, wall_s)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        await local.stop()


async def _wait_settled(
    api: httpx.AsyncClient, campaign_id: str, started: float, timeout_s: float
) -> list[dict[str, Any]]:
    """Every contact final or waiting for its window; returns the contacts as the API has them."""
    deadline = started + timeout_s
    shown = started
    while True:
        found = await _contacts(api, campaign_id)
        open_now = [c for c in found if c["state"] in (PENDING, DIALING) and not _held(c)]
        if not open_now or time.monotonic() > deadline:
            return found
        if time.monotonic() - shown > 15:
            shown = time.monotonic()
            done = sum(c["state"] not in (PENDING, DIALING) for c in found)
            print(
                f"  {shown - started:5.0f} s: {done}/{len(found)} contacts final",
                file=sys.stderr,
                flush=True,
            )
        await asyncio.sleep(1.0)


async def _contacts(api: httpx.AsyncClient, campaign_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = await api.get(
            f"/api/campaigns/{campaign_id}/contacts", params={"limit": 1000, "offset": len(found)}
        )
        page.raise_for_status()
        batch = page.json()["contacts"]
        found += batch
        if len(batch) < 1000:
            return found


def _held(contact: dict[str, Any]) -> bool:
    """Pending until its calling window opens (hours away), not for a retry."""
    next_at = contact.get("next_at")
    if contact["state"] != PENDING or not next_at:
        return False
    when = datetime.fromisoformat(next_at.replace("Z", "+00:00"))
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when > datetime.now(UTC) + timedelta(hours=1)


def most_live(calls: list[DialedCall]) -> int:
    """The most of the fake's calls live at once (created to final status)."""
    edges: list[tuple[float, int]] = []
    for call in calls:
        if not call.history:
            continue
        edges += [(call.history[0][1], 1), (call.ended_at or time.monotonic(), -1)]
    level = peak = 0
    for _when, step in sorted(edges):
        level += step
        peak = max(peak, level)
    return peak


def _figures(
    args: argparse.Namespace,
    contacts: list[SimContact],
    zones: list[str],
    windows: dict[str, list[str]],
    final: list[dict[str, Any]],
    attempts: list[Attempt],
    local: LocalAgent,
    wall_s: float,
) -> dict[str, Any]:
    creates = [
        r
        for r in local.rest.requests
        if r.method == "POST" and r.path.endswith("/Calls.json") and r.authorized
    ]
    dialled = [
        parse_qs(urlsplit(r.form.get("Url", "")).query).get("attempt", [""])[0] for r in creates
    ]
    calls = list(local.rest.dialer.calls.values())
    kind_of = {c.phone: c.kind for c in contacts}
    zone_of = {c.phone: z for c, z in zip(contacts, zones, strict=True)}
    calling = CampaignRules(agent=AGENT, windows=windows).calling_windows
    dial_times = [(a.to, a.dialed_at or a.created_at) for a in attempts]
    dial_times = [(to, when) for to, when in dial_times if when is not None]
    began = datetime.now(UTC) - timedelta(seconds=wall_s)
    closed = {
        c.phone for c, z in zip(contacts, zones, strict=True) if not calling.is_open(began, z)
    }  # their window was closed all along (the bench takes minutes, not hours)
    outcomes: Counter[tuple[str, str]] = Counter()
    misses: Counter[str] = Counter()
    voice_of = {c.phone: c.voice for c in contacts}
    for contact in final:
        phone = contact["phone"]
        waiting = phone in closed and _held(contact)
        got = "waiting-window" if waiting else (contact["disposition"] or contact["state"])
        outcomes[(kind_of[phone], got)] += 1
        if not waiting and got != EXPECTED[kind_of[phone]]:
            misses[voice_of[phone] or "-"] += 1
    sids = [a.provider_call_id for a in attempts if a.provider_call_id]
    return {
        "via": "twilio-sim",
        "backend": args.backend,
        "processes": args.processes or 0,
        "threads": args.threads,
        "contacts": len(contacts),
        "max_concurrent": args.max_concurrent,
        "cps_limit": args.cps,
        "wall_s": round(wall_s, 1),
        "dials": len(creates),
        "dials_per_s": round(len(creates) / wall_s, 2) if wall_s else 0.0,
        "calls_answered": sum(c.answered_at is not None for c in calls),
        "most_live_calls": most_live(calls),
        "most_in_flight": most_in_flight(attempts),
        "duplicate_attempts": sum(
            n - 1 for n in Counter((a.contact_id, a.number) for a in attempts).values()
        ),
        "attempts_dialled_twice": sum(
            n - 1 for n in Counter(t.split(".")[0] for t in dialled).values()
        ),
        "call_sids_twice": sum(n - 1 for n in Counter(sids).values()),
        "outside_window": sum(
            not calling.is_open(when.replace(tzinfo=UTC), zone_of[to]) for to, when in dial_times
        ),
        "unfinished": sum(c["state"] in (PENDING, DIALING) and not _held(c) for c in final),
        "fake_call_errors": sum(c.error is not None for c in calls),
        "outcomes": [
            {"kind": k, "expected": EXPECTED[k], "got": got, "contacts": n}
            for (k, got), n in sorted(outcomes.items())
        ],
        "unexpected_by_voice": dict(misses.most_common()),
        "attempt_outcomes": dict(Counter(str(a.disposition) for a in attempts).most_common()),
    }


def print_figures(r: dict[str, Any]) -> None:
    """The figures as a short report."""
    workers = f"{r['processes']} worker processes" if r["processes"] else "in-process consumer"
    print(
        f"campaign bench via the agent and the fake Twilio: {r['contacts']} contacts, "
        f"{r['backend']} queue, {workers} x {r['threads']} threads, "
        f"cap {r['max_concurrent']}, {r['cps_limit']} calls/s"
    )
    print(f"  wall time            {r['wall_s']} s ({r['unfinished']} contacts unfinished)")
    print(
        f"  dials                {r['dials']} ({r['dials_per_s']} per second), "
        f"{r['calls_answered']} answered"
    )
    print(
        f"  most live calls      {r['most_live_calls']} at the fake, "
        f"{r['most_in_flight']} attempts in flight (cap {r['max_concurrent']})"
    )
    print(
        f"  duplicates           {r['duplicate_attempts']} contact+attempt, "
        f"{r['attempts_dialled_twice']} attempts dialled twice, "
        f"{r['call_sids_twice']} CallSids twice"
    )
    print(f"  outside the window   {r['outside_window']} (in the callee's time zone)")
    print(f"  broken fake calls    {r['fake_call_errors']}")
    print(f"  {'callee kind':<12} {'expected':<15} {'got':<15} contacts")
    for row in r["outcomes"]:
        print(f"  {row['kind']:<12} {row['expected']:<15} {row['got']:<15} {row['contacts']}")
    unexpected = ", ".join(f"{k} {n}" for k, n in r["unexpected_by_voice"].items())
    print(f"  unexpected outcomes  {unexpected or 'none'} (by the callee's voice)")
    print(
        "  attempt outcomes     " + ", ".join(f"{k} {n}" for k, n in r["attempt_outcomes"].items())
    )
