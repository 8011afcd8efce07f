"""The concurrency bench's fleet: calls spread round-robin, CPU counted over process trees."""

from __future__ import annotations

import os
import subprocess
import sys

from simulator.bench.fleet import Fleet, process_trees
from simulator.target import Target


def test_calls_go_round_robin_over_the_processes() -> None:
    targets = [Target(f"ws://127.0.0.1:{port}/twilio/stream") for port in (7001, 7002)]
    fleet = Fleet(targets)
    assert [fleet.target_for(i).stream_url for i in range(4)] == [
        t.stream_url for t in targets + targets
    ]
    assert fleet.cpu_seconds() is None  # nothing started here: no server CPU to report


def test_a_process_tree_takes_in_its_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tree = process_trees([os.getpid()])
        assert {os.getpid(), child.pid} <= tree
        assert child.pid not in process_trees([os.getppid() + 10**7])  # no such process
    finally:
        child.kill()
        child.wait()
