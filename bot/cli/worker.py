"""``callagent worker``: consume the campaign job queue in a process of its own.

Run one or more beside ``callagent serve`` (set ``CALLAGENT_QUEUE_IN_PROCESS=false`` on
the server then) with the server's settings: the same queue (``CALLAGENT_QUEUE_URL``;
Redis or PostgreSQL for workers on several hosts), the same call-record database and the
Twilio settings the dialler needs. SIGTERM lets running tasks finish; SIGINT stops now.
"""

from __future__ import annotations

import argparse
import sys

from bot.settings import Settings


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``callagent worker``."""
    worker = subparsers.add_parser("worker", help="run campaign queue workers (huey consumer)")
    worker.add_argument(
        "--workers", type=int, help="worker threads (default CALLAGENT_QUEUE_WORKERS)"
    )
    worker.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``callagent worker``."""
    from bot.cli import configure_logging
    from bot.outbound.consumer import huey_logs_to_stderr, run_worker
    from bot.outbound.loop_bridge import LoopBridge
    from bot.outbound.wiring import OutboundUnavailable, build_runner
    from integrations.storage import migrate
    from integrations.storage.engine import make_engine

    settings = Settings.load()
    configure_logging(settings.log_level, settings.log_format)
    huey_logs_to_stderr()
    engine = make_engine(settings.records_database_url)
    migrate.upgrade(engine)
    loop = LoopBridge.own()
    try:
        runner = build_runner(settings, engine, loop)
    except OutboundUnavailable as e:
        print(f"callagent worker: {e}", file=sys.stderr)
        return 2
    try:
        run_worker(runner, args.workers or settings.queue_workers)
    finally:
        loop.close()
        engine.dispose()
    return 0
