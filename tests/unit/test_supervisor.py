"""``callagent serve --workers N``'s supervisor: real processes, stand-in workers.

The supervisor (``bot/serving/supervisor.py``) runs as its own process, as under ``callagent
serve``; its workers are ``tests/support/stub_worker.py``, which speak its protocol (ready,
recycle, SIGTERM, SIGUSR1) over the inherited socket without loading models. What is checked
is what a deployment sees: how many processes answer on the port, which, and how it stops.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from integrations.storage.workers import pid_alive
from simulator.ports import free_tcp_port
from tests.support.stub_worker import FAIL_ONCE

ROOT = Path(__file__).resolve().parents[2]


class Port:
    def __init__(self, port: int, process: subprocess.Popen[bytes], fail_once: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.process = process
        self.fail_once = fail_once
        """Touch it: the next worker started dies before it accepts."""

    def pid(self, path: str = "/") -> int:
        return int(httpx.get(self.url + path, timeout=5).json()["pid"])

    def answering(self, want: int, timeout_s: float = 20.0) -> set[int]:
        """The pids answering on the port, once ``want`` distinct ones have (and are alive)."""
        deadline = time.monotonic() + timeout_s
        seen: set[int] = set()
        while time.monotonic() < deadline:
            try:
                seen.add(self.pid())
            except httpx.HTTPError:
                time.sleep(0.05)
            seen = {p for p in seen if pid_alive(p)}
            if len(seen) >= want:
                return seen
        raise AssertionError(f"only {seen} answered")


@pytest.fixture
def port(tmp_path: Path) -> Iterator[Port]:
    number = free_tcp_port()
    fail_once = tmp_path / "fail-once"
    env = {**os.environ, "PYTHONPATH": str(ROOT), FAIL_ONCE: str(fail_once)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.stub_supervisor", str(number), "2"],
        cwd=ROOT,
        env=env,
    )
    try:
        yield Port(number, process, fail_once)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def wait_gone(pid: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        assert time.monotonic() < deadline, f"{pid} still runs"
        time.sleep(0.05)


def test_two_workers_answer_on_one_port_and_sigterm_stops_both(port: Port) -> None:
    workers = port.answering(2)
    assert port.process.pid not in workers  # the parent only supervises
    port.process.send_signal(signal.SIGTERM)
    assert port.process.wait(20) == 0
    for pid in workers:
        wait_gone(pid)
    with pytest.raises(httpx.ConnectError):
        port.pid()


def test_a_dead_worker_is_replaced(port: Port) -> None:
    first = port.answering(2)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    wait_gone(victim)
    now = port.answering(2)
    assert victim not in now and len(now) == 2
    port.process.send_signal(signal.SIGTERM)
    assert port.process.wait(20) == 0


def test_a_worker_that_asks_to_recycle_is_replaced_once_its_replacement_is_ready(
    port: Port,
) -> None:
    before = port.answering(2)
    old = port.pid("/recycle")  # that worker asks for a replacement
    wait_gone(old)  # retired (SIGUSR1) once the replacement said ready
    after = port.answering(2)
    assert old not in after and len(after & before) == 1
    port.process.send_signal(signal.SIGTERM)
    assert port.process.wait(20) == 0


def test_a_replacement_that_dies_before_it_accepts_is_started_again(port: Port) -> None:
    before = port.answering(2)
    port.fail_once.touch()  # the first replacement dies loading
    old = port.pid("/recycle")
    wait_gone(old)  # retired once a second replacement said ready
    assert not port.fail_once.exists()  # the first one did die
    after = port.answering(2)
    assert old not in after and len(after & before) == 1
    port.process.send_signal(signal.SIGTERM)
    assert port.process.wait(20) == 0
