"""The simulator's ``callagent bench`` command group: one subcommand per bench.

Registered through the ``callagent.commands`` entry points (see pyproject.toml), so the
shipped CLI finds it without importing the simulator.
"""

from __future__ import annotations

import argparse

from simulator.bench import (
    amd,
    answers,
    barge_in,
    campaign,
    concurrency,
    hosts,
    latency,
    records,
    soak,
    speech,
)
from simulator.understanding import bench as understanding
from simulator.understanding import noise_path


def add_bench_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``callagent bench <kind>``."""
    bench = subparsers.add_parser("bench", help="measure the agent over real protocols")
    kinds = bench.add_subparsers(dest="bench_kind", required=True)
    for module in (
        latency,
        records,
        barge_in,
        concurrency,
        hosts,
        soak,
        speech,
        noise_path,
        understanding,
        campaign,
        amd,
        answers,
    ):
        module.add_parser(kinds)
