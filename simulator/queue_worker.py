"""A campaign queue worker process on the simulated network (the kill -9 test and the bench).

``python -m simulator.queue_worker --db URL --queue URL --dials PATH`` runs the same
runner and huey consumer as ``callagent worker``, with the simulator's campaign store
and dialler (:mod:`simulator.campaign_double`, :mod:`simulator.fake_dialer`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from huey import Huey
from sqlalchemy import Engine

from bot.outbound.consumer import huey_logs_to_stderr, run_worker
from bot.outbound.loop_bridge import LoopBridge
from bot.outbound.runner import CampaignRunner, RunnerTiming
from integrations.outbound.queue import make_huey
from integrations.outbound.store import OutboundStore
from integrations.storage.engine import make_engine
from simulator.campaign_double import SimpleCampaignStore
from simulator.fake_dialer import FakeDialer


def sim_runner(
    huey: Huey,
    engine: Engine,
    dials: Path,
    loop: LoopBridge,
    *,
    timing: RunnerTiming | None = None,
    refuse: dict[str, tuple[int, bool]] | None = None,
    webhook_secret: str = "",
) -> CampaignRunner:
    """The runner with the simulator's campaign store and dialler."""
    attempts = OutboundStore(engine)
    return CampaignRunner(
        huey,
        SimpleCampaignStore(engine),
        attempts,
        FakeDialer(attempts, dials, refuse),
        loop,
        webhook_secret=webhook_secret,
        timing=timing,
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
