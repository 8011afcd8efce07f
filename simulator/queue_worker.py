"""A campaign queue worker process on the simulated network (the kill -9 test and the bench).

``python -m simulator.queue_worker --db URL --queue URL --dials PATH`` runs the same
runner and huey consumer as ``callagent worker``, with the shipped campaign store
(:class:`integrations.outbound.campaigns.CampaignStore`) and the simulator's dialler
(:mod:`simulator.fake_dialer`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from huey import Huey
from sqlalchemy import Engine

from bot.outbound.consumer import huey_logs_to_stderr, run_worker
from bot.outbound.loop_bridge import LoopBridge
from bot.outbound.runner import CampaignRunner, RunnerTiming
from integrations.outbound.campaigns import CampaignStore
from integrations.outbound.queue import make_huey
from integrations.outbound.retries import RetryPolicy
from integrations.outbound.rules import CampaignRules
from integrations.outbound.store import OutboundStore
from integrations.storage.engine import make_engine
from integrations.storage.records import utcnow
from simulator.fake_dialer import FakeDialer

OPEN_ALL_WEEK = {"mon-sun": ["00:00-24:00"]}
SIM_AGENT = "appointment_reminders"


def sim_rules(retries: Sequence[str] = (), **over: Any) -> CampaignRules:
    """Campaign rules for the simulated network: open all week, UTC, unpaced unless given.

    ``retries`` are rule texts (``"no-answer=1x1s"``) and the only retries: the shipped
    defaults (minutes apart) are left out.
    """
    values: dict[str, Any] = {
        "agent": SIM_AGENT,
        "windows": OPEN_ALL_WEEK,
        "calls_per_second": 100.0,
        "retries": RetryPolicy.parse(list(retries), base=RetryPolicy({})),
        **over,
    }
    return CampaignRules(**values)


def sim_campaign(
    store: CampaignStore,
    phones: Sequence[str],
    rules: CampaignRules,
    *,
    timezones: Sequence[str] = (),
    now: datetime | None = None,
) -> str:
    """A running campaign calling ``phones`` (in ``timezones``, else the rules' zone)."""
    rows = [
        {"phone": phone, **({"timezone": timezones[i]} if timezones else {})}
        for i, phone in enumerate(phones)
    ]
    info, problems = store.create_from_rows("sim", rules, rows, now=now)
    if problems:
        raise ValueError(f"rows refused: {[(p.line, p.reason) for p in problems]}")
    return info.id


def sim_runner(
    huey: Huey,
    engine: Engine,
    dials: Path,
    loop: LoopBridge,
    *,
    timing: RunnerTiming | None = None,
    refuse: dict[str, tuple[int, bool]] | None = None,
    webhook_secret: str = "",
    clock: Callable[[], datetime] = utcnow,
) -> CampaignRunner:
    """The runner with the shipped campaign store and the simulator's dialler."""
    attempts = OutboundStore(engine)
    return CampaignRunner(
        huey,
        CampaignStore(engine),
        attempts,
        FakeDialer(attempts, dials, refuse),
        loop,
        webhook_secret=webhook_secret,
        timing=timing,
        clock=clock,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the worker until SIGTERM/SIGINT (or SIGKILL)."""
    p = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    p.add_argument("--db", required=True, help="call-record database URL (migrated)")
    p.add_argument("--queue", required=True, help="queue URL (sqlite:///..., redis://...)")
    p.add_argument("--dials", type=Path, required=True, help="the network's dial log")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--stale-dial-s", type=float, default=120.0)
    p.add_argument("--refuse", default="{}", help='JSON {"suffix": [code, retryable]}')
    args = p.parse_args(argv)
    huey_logs_to_stderr()
    engine = make_engine(args.db)
    loop = LoopBridge.own()
    refuse = {k: (int(v[0]), bool(v[1])) for k, v in json.loads(args.refuse).items()}
    runner = sim_runner(
        make_huey(args.queue),
        engine,
        args.dials,
        loop,
        timing=RunnerTiming(stale_dial_s=args.stale_dial_s),
        refuse=refuse,
    )
    try:
        run_worker(runner, args.workers)
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
