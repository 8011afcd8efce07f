"""Hosts on one machine for ``callagent bench hosts``: network namespaces, veth pairs, HAProxy.

Needs root, iproute2 and HAProxy (``apt-get install -y haproxy``). :func:`lab` builds a
bridge on the machine (the "LAN", :data:`GATEWAY`) and one network namespace per host,
each joined to it by a veth pair (host ``i`` at ``10.77.0.1i``). Services that listen on
loopback only (Redis, PostgreSQL, the fake Twilio REST API) are published on the bridge by
HAProxy in TCP mode; the agents are reached through HAProxy in HTTP mode (round-robin,
health-checked, WebSockets tunnelled) like behind any load balancer.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PREFIX = "cabench"
BRIDGE = f"{PREFIX}0"
SUBNET = "10.77.0"
GATEWAY = f"{SUBNET}.1"
AGENT_PORT = 7860
BALANCER_PORT = 8000
STATS_PORT = 18404
"""HAProxy's statistics (CSV at ``/stats;csv``), on loopback."""


class LabUnavailable(RuntimeError):
    """The namespaces or the balancer cannot be set up here (the message says why)."""


@dataclass(frozen=True)
class Host:
    """One simulated host: its network namespace and address."""

    name: str
    namespace: str
    address: str

    @property
    def base_url(self) -> str:
        """The agent on this host, reached directly (not through the balancer)."""
        return f"http://{self.address}:{AGENT_PORT}"


def _ip(*args: str, check: bool = True) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise LabUnavailable(f"ip {' '.join(args)}: {result.stderr.strip()}")


def _require(tool: str, hint: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if path is None:
        raise LabUnavailable(f"{tool} is not installed ({hint})")
    return path


def _teardown(count: int) -> None:
    for i in range(1, count + 1):
        namespace = f"{PREFIX}-h{i}"
        for pid in _pids(namespace):
            try:
                os.kill(pid, signal.SIGKILL)  # left by an interrupted run
            except ProcessLookupError:
                pass
        _ip("netns", "del", namespace, check=False)
        _ip("link", "del", f"{PREFIX}v{i}", check=False)
    _ip("link", "del", BRIDGE, check=False)


@contextmanager
def namespaces(count: int) -> Iterator[list[Host]]:
    """``count`` hosts on a bridge at :data:`GATEWAY`; all removed on exit."""
    _require("ip", "apt-get install -y iproute2")
    _teardown(count)  # what an interrupted run left behind
    hosts = [Host(f"h{i}", f"{PREFIX}-h{i}", f"{SUBNET}.1{i}") for i in range(1, count + 1)]
    try:
        _ip("link", "add", BRIDGE, "type", "bridge")
        _ip("addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        _ip("link", "set", BRIDGE, "up")
        for i, host in enumerate(hosts, start=1):
            outside, inside = f"{PREFIX}v{i}", f"{PREFIX}p{i}"
            _ip("netns", "add", host.namespace)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", outside, "master", BRIDGE)
            _ip("link", "set", outside, "up")
            _ip("link", "set", inside, "netns", host.namespace)
            ns = ("-n", host.namespace)
            _ip(*ns, "addr", "add", f"{host.address}/24", "dev", inside)
            _ip(*ns, "link", "set", inside, "up")
            _ip(*ns, "link", "set", "lo", "up")
            _ip(*ns, "route", "add", "default", "via", GATEWAY)
        yield hosts
    finally:
        _teardown(count)


def haproxy_config(
    hosts: list[Host], tcp: Mapping[int, int], *, health_path: str = "/healthz"
) -> str:
    """HAProxy's configuration: the agents behind :data:`BALANCER_PORT`, and TCP relays.

    Args:
        hosts: The agents, balanced round-robin, health-checked every second.
        tcp: Port on the bridge -> port on loopback (Redis, PostgreSQL, fake Twilio...).
        health_path: What the balancer polls (a readiness endpoint when the agent has one).
    """
    servers = "\n".join(
        f"    server {h.name} {h.address}:{AGENT_PORT} check inter 1s fall 2 rise 2" for h in hosts
    )
    relays = "\n".join(
        f"listen relay{outside}\n    mode tcp\n    bind {GATEWAY}:{outside}\n"
        f"    server local 127.0.0.1:{inside}\n"
        for outside, inside in tcp.items()
    )
    return f"""global
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    retries 2
    option redispatch

frontend agents
    bind {GATEWAY}:{BALANCER_PORT}
    default_backend agents

backend agents
    balance roundrobin
    option httpchk GET {health_path}
    http-check expect status 200
{servers}

listen stats
    bind 127.0.0.1:{STATS_PORT}
    stats enable
    stats uri /stats

{relays}"""


@contextmanager
def haproxy(config: str) -> Iterator[str]:
    """HAProxy running ``config`` in the foreground; yields the balancer's URL."""
    binary = _require("haproxy", "apt-get install -y haproxy")
    workdir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-haproxy-"))
    path = workdir / "haproxy.cfg"
    path.write_text(config)
    check = subprocess.run([binary, "-c", "-q", "-f", str(path)], capture_output=True, text=True)
    if check.returncode != 0:
        raise LabUnavailable(f"HAProxy refused its configuration: {check.stderr.strip()}")
    process = subprocess.Popen(
        [binary, "-db", "-f", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(0.5)
        if process.poll() is not None:
            raise LabUnavailable(f"HAProxy exited at start (code {process.returncode})")
        yield f"http://{GATEWAY}:{BALANCER_PORT}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def backend_status(csv: str) -> dict[str, str]:
    """Each agent's state as the balancer sees it (``UP``, ``DOWN``...) from its CSV stats."""
    lines = csv.lstrip("# ").splitlines()
    if not lines:
        return {}
    names = lines[0].split(",")
    out: dict[str, str] = {}
    for line in lines[1:]:
        row = dict(zip(names, line.split(","), strict=False))
        if row.get("pxname") == "agents" and row.get("svname") not in ("FRONTEND", "BACKEND"):
            out[row.get("svname", "")] = row.get("status", "")
    return out


def namespace_pids(host: Host) -> list[int]:
    """Every process running in ``host``'s network namespace (``ip netns pids``)."""
    return _pids(host.namespace)


def _pids(namespace: str) -> list[int]:
    result = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False
    )
    return [int(p) for p in result.stdout.split() if p.isdigit()]


def in_namespace(host: Host, argv: list[str]) -> list[str]:
    """``argv`` run inside ``host``'s namespace (``ip netns exec`` execs it: same pid)."""
    return ["ip", "netns", "exec", host.namespace, *argv]
