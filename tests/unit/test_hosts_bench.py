"""``callagent bench hosts``: its balancer configuration, relays and report (no root needed)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest

from simulator.bench.hosts_lab import relayed
from simulator.bench.hosts_report import save_html, summarise
from simulator.bench.netns import GATEWAY, Host, backend_status, haproxy_config

HOSTS = [Host(f"h{i}", f"cabench-h{i}", f"10.77.0.1{i}") for i in (1, 2, 3)]


def test_haproxy_accepts_the_configuration(tmp_path: Path) -> None:
    binary = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if binary is None:
        pytest.skip("haproxy is not installed")
    config = haproxy_config(HOSTS, {15432: 5432, 16379: 6379}, health_path="/readyz")
    path = tmp_path / "haproxy.cfg"
    path.write_text(config)
    check = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "GET /readyz" in config
    assert all(f"server {h.name} {h.address}:7860 check" in config for h in HOSTS)


def test_loopback_services_are_relayed_onto_the_hosts_network() -> None:
    relays: dict[int, int] = {}
    url = relayed("postgresql+psycopg://callagent@127.0.0.1:5544/db", 15432, relays)
    assert url == f"postgresql+psycopg://callagent@{GATEWAY}:15432/db"
    assert relays == {15432: 5544}
    assert (
        relayed("redis://redis.internal:6379/0", 16379, relays) == "redis://redis.internal:6379/0"
    )
    assert relays == {15432: 5544}


def _call(sid: str, *, error: str | None = None, unanswered: int = 0) -> dict[str, object]:
    return {"sid": sid, "latencies": [500.0, 700.0], "unanswered": unanswered, "error": error}


def test_the_report_counts_losses_per_host_and_the_dead_hosts_records(tmp_path: Path) -> None:
    run = {
        "calls": [
            _call("CA1"),
            _call("CA2", error="CallEndedError"),
            _call("CA3", unanswered=1),
            _call("CA4", error="OSError"),  # never reached a host
        ],
        "records": {
            "CA1": {"host": "h1", "outcome": "resolved", "end_reason": "caller hung up"},
            "CA2": {"host": "h2", "outcome": "failed", "ended_at": "t", "end_reason": "lost"},
            "CA3": {"host": "h3", "outcome": "resolved", "ended_at": "t"},
        },
        "killed": {"host": "h2", "pid": 1, "at": 0.0, "t_s": 20.0, "events": None},
        "closed_within_s": 61.0,
        "hosts": {"h1": 10, "h2": 11, "h3": 12},
        "speech": {},
        "balancer": "http://10.77.0.1:8000",
    }
    args = argparse.Namespace(speech="embedded", questions=2)
    s = summarise(run, args)
    assert s["lost_on_surviving_hosts"] == 1  # CA3's unanswered question
    assert (s["dead_host_calls"], s["dead_host_records_closed"]) == (1, 1)
    assert (s["calls_without_record"], s["calls_without_record_lost"]) == (1, 1)
    by_host = {r["host"]: r for r in s["per_host"]}
    assert by_host["h2"]["killed"] and by_host["h2"]["outcomes"] == {"failed": 1}
    assert by_host["h1"]["records_closed"] == 0  # no ended_at in its record
    save_html(tmp_path / "hosts.html", s)
    assert "h2 (killed)" in (tmp_path / "hosts.html").read_text()


def test_the_balancers_view_of_the_hosts_is_read_from_its_csv_statistics() -> None:
    csv = (
        "# pxname,svname,qcur,status,weight\n"
        "agents,FRONTEND,,OPEN,\n"
        "agents,h1,0,UP,1\n"
        "agents,h2,0,DOWN,1\n"
        "agents,BACKEND,0,UP,2\n"
        "relay15432,local,0,no check,1\n"
    )
    assert backend_status(csv) == {"h1": "UP", "h2": "DOWN"}


def test_the_shipped_balancer_configuration_is_valid_and_checks_readiness() -> None:
    binary = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if binary is None:
        pytest.skip("haproxy is not installed")
    path = Path(__file__).parents[2] / "deploy" / "haproxy.cfg"
    check = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "/readyz" in path.read_text()
