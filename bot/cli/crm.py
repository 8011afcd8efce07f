"""``callagent crm``: the embedded CRM (seed, load CSV, look up) and the prefetch benchmark.

``crm seed`` loads the reference agent's demo customers; ``crm load FILE.csv`` imports
customers, appointments, cases, interactions or pending actions (the table is told from the
header, or ``--table``); ``crm lookup NUMBER`` shows what a call from that number would know;
``crm bench`` measures the call-start prefetch (p50/p95) through the real prefetch processor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from loguru import logger


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``callagent crm <action>``."""
    crm = subparsers.add_parser("crm", help="the embedded CRM: seed, load CSV, lookup, bench")
    actions = crm.add_subparsers(dest="crm_action", required=True)

    seed = actions.add_parser("seed", help="load the reference agent's demo customers")
    seed.add_argument("--db", type=Path, help="CRM file (default CALLAGENT_CRM_DB)")
    seed.set_defaults(func=run_seed)

    load = actions.add_parser("load", help="import a CSV file into the embedded CRM")
    load.add_argument("csv", type=Path, help="the CSV file (UTF-8, header row)")
    load.add_argument(
        "--table",
        choices=["customers", "appointments", "cases", "interactions", "pending_actions"],
        help="target table (default: told from the header)",
    )
    load.add_argument("--db", type=Path, help="CRM file (default CALLAGENT_CRM_DB)")
    load.set_defaults(func=run_load)

    lookup = actions.add_parser("lookup", help="show the record a call from IDENTITY gets")
    lookup.add_argument("identity", help="phone number, customer id or email")
    lookup.set_defaults(func=run_lookup)

    bench = actions.add_parser("bench", help="CRM prefetch latency through the prefetch processor")
    bench.add_argument("--calls", type=int, default=200, help="calls to simulate (200)")
    bench.add_argument(
        "--concurrency", type=int, default=4, help="calls starting at the same time (4)"
    )
    bench.add_argument(
        "--configured",
        action="store_true",
        help="bench the configured CRM (CALLAGENT_CRM) instead of a fresh embedded demo CRM",
    )
    bench.add_argument("--json", type=Path, help="also save the results as JSON here")
    bench.set_defaults(func=run_bench)


def _sqlite(args: argparse.Namespace) -> Any:
    from bot.call.crm import crm_db_path
    from bot.settings import Settings
    from integrations.crm.sqlite_crm import SQLiteCRM

    path = args.db or crm_db_path(Settings.load())
    return SQLiteCRM(path)


def run_seed(args: argparse.Namespace) -> int:
    """``callagent crm seed``."""
    from integrations.crm.demo_data import seed_rows

    crm = _sqlite(args)
    written = crm.insert_rows(seed_rows())
    print(f"seeded {written} demo rows into {crm.path} ({crm.count('customers')} customers)")
    return 0


def run_load(args: argparse.Namespace) -> int:
    """``callagent crm load FILE.csv``."""
    from integrations.crm.sqlite_crm import CSVImportError

    crm = _sqlite(args)
    try:
        table, written = crm.load_csv(args.csv, args.table)
    except (CSVImportError, OSError) as e:
        print(f"{args.csv}: {e}", file=sys.stderr)
        return 2
    print(f"imported {written} {table} rows from {args.csv} into {crm.path}")
    return 0


def run_lookup(args: argparse.Namespace) -> int:
    """``callagent crm lookup IDENTITY`` (prints caller data to the terminal, never to logs)."""
    from bot.call.crm import make_crm
    from bot.settings import Settings

    crm = make_crm(Settings.load())
    if crm is None:
        print("CALLAGENT_CRM=none: no CRM configured", file=sys.stderr)
        return 2
    record = asyncio.run(crm.lookup(args.identity))
    if record is None:
        print("not found")
        return 1
    print(json.dumps(record.summary(), indent=2, default=str))
    return 0


def run_bench(args: argparse.Namespace) -> int:
    """``callagent crm bench``: prefetch latency per call, p50/p95, never failing on slowness."""
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    with tempfile.TemporaryDirectory(prefix="callagent-crm-bench-") as tmp:
        if args.configured:
            from bot.call.crm import make_crm
            from bot.settings import Settings

            crm = make_crm(Settings.load())
            if crm is None:
                print("CALLAGENT_CRM=none: nothing to bench", file=sys.stderr)
                return 2
        else:
            from integrations.crm.sqlite_crm import SQLiteCRM

            crm = SQLiteCRM(Path(tmp) / "crm.db", seed_demo=True)
        result = asyncio.run(bench_prefetch(crm, calls=args.calls, concurrency=args.concurrency))
    print(
        f"CRM prefetch ({result['backend']}, {result['calls']} calls, "
        f"{result['concurrency']} at a time, found {result['found']}):\n"
        f"  p50 {result['p50_ms']} ms   p95 {result['p95_ms']} ms   max {result['max_ms']} ms   "
        f"over the {result['budget_ms']:.0f} ms budget: {result['over_budget']}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


async def bench_prefetch(
    crm: Any, *, calls: int, concurrency: int, budget_ms: float = 500.0
) -> dict[str, Any]:
    """Run ``calls`` prefetches through :class:`CrmPrefetchProcessor` in real pipelines."""
    from pipecat.frames.frames import EndFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineWorker
    from pipecat.workers.runner import WorkerRunner

    from integrations.percentile import latency_summary
    from processors.crm_prefetch import CrmPrefetchProcessor

    phones = crm.customer_phones() if hasattr(crm, "customer_phones") else []
    identities = phones + ["+15555550999"]  # mostly known callers, some unknown
    latencies: list[float] = []
    found = 0

    async def one_call(n: int) -> None:
        nonlocal found
        prefetch = CrmPrefetchProcessor(
            crm, identities[n % len(identities)], call_id=f"bench{n}", budget_ms=budget_ms
        )
        worker = PipelineWorker(Pipeline([prefetch]), check_dangling_tasks=False)
        runner = WorkerRunner(handle_sigint=False, check_dangling_tasks=False)
        await runner.add_workers(worker)
        run = asyncio.create_task(runner.run())
        deadline = time.perf_counter() + 15
        while prefetch.latency_ms is None and time.perf_counter() < deadline:
            await asyncio.sleep(0.001)
        if prefetch.latency_ms is not None:
            latencies.append(prefetch.latency_ms)
            found += prefetch.record is not None
        await worker.queue_frame(EndFrame())
        await run

    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def guarded(n: int) -> None:
        async with semaphore:
            with logger.contextualize(call_id=f"bench{n}"):  # as run_call does for a call
                await one_call(n)

    await asyncio.gather(*(guarded(n) for n in range(calls)))
    stats = latency_summary(latencies, digits=2)
    return {
        "backend": getattr(crm, "name", "crm"),
        "calls": calls,
        "concurrency": concurrency,
        "found": found,
        **{k: stats[k] for k in ("p50_ms", "p95_ms", "max_ms", "mean_ms")},
        "budget_ms": budget_ms,
        "over_budget": sum(1 for v in latencies if v > budget_ms),
    }
