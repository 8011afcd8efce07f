"""Several agent processes serving one deployment, as the benches place calls on them.

:class:`Fleet` is N ``callagent serve`` processes started here on loopback, each on its
own port, sharing one record store (a SQLite file in one data folder, or ``--database-url``)
and, when given, one shared state (``CALLAGENT_SHARED_STATE_URL``, e.g. Redis); or one
running deployment reached at a URL (a load balancer, or a single agent). Calls are spread
over its targets round-robin (:meth:`Fleet.target_for`), the way a balancer would.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from simulator.local_agent import LocalAgent
from simulator.target import Target

SHARED_STATE_SETTING = "CALLAGENT_SHARED_STATE_URL"
WORKERS_SETTING = "CALLAGENT_WORKERS"


def serves_workers() -> bool:
    """Whether this version's ``callagent serve`` runs several worker processes."""
    from bot.settings import Settings

    return "workers" in Settings.model_fields


@dataclass
class Fleet:
    """The agent processes under test and how to reach them.

    Parameters:
        targets: One per process started here (round-robin), or the one URL given.
        agents: The processes started here (empty for a running deployment).
        label: Where the calls went, for reports.
    """

    targets: list[Target]
    agents: list[LocalAgent] = field(default_factory=list)
    label: str = ""
    workdir: tempfile.TemporaryDirectory[str] | None = None
    """The shared data folder (removed at :meth:`stop`)."""

    @property
    def pids(self) -> list[int]:
        """The agent processes' ids (started here), for CPU sampling."""
        return [a.pid for a in self.agents if a.pid is not None]

    def cpu_seconds(self) -> float | None:
        """CPU seconds the agent processes and their children (``--workers``) used so far."""
        from bot.operator.diagnostics import cpu_seconds

        pids = self.pids
        if not pids:
            return None
        return sum(cpu_seconds(pid) for pid in process_trees(pids))

    def target_for(self, i: int) -> Target:
        """Where the ``i``-th call goes (round-robin over the processes)."""
        return self.targets[i % len(self.targets)]

    async def active_calls(self) -> int:
        """Calls in progress over all the processes (``/healthz``); unreachable ones count 0."""
        total = 0
        async with httpx.AsyncClient() as client:
            for t in self.targets:
                if not t.base_url:
                    continue
                try:
                    r = await client.get(f"{t.base_url}/healthz", timeout=10)
                    total += int(r.json().get("active_calls", 0))
                except (httpx.HTTPError, ValueError):
                    continue
        return total

    async def stop(self) -> None:
        """Stop what was started here."""
        for agent in self.agents:
            await agent.stop()
        self.agents = []
        if self.workdir is not None:
            self.workdir.cleanup()
            self.workdir = None


def process_trees(roots: list[int]) -> set[int]:
    """The processes ``roots`` and all their living descendants (from ``/proc``)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


async def start_fleet(
    url: str | None,
    *,
    processes: int = 1,
    mode: str = "process",
    auth_token: str | None = None,
    operator_token: str | None = None,
    database_url: str = "",
    shared_state_url: str = "",
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    verbose: bool = False,
    sip: str | None = None,
) -> Fleet:
    """A running deployment at ``url``, or ``processes`` agents started here sharing one store.

    Args:
        url: A running agent or load balancer (``http(s)://HOST``); nothing is started.
        processes: How many agents to start (each ``callagent serve`` on its own port).
        mode: ``process`` (or ``thread`` for one agent in this process).
        auth_token: Twilio auth token of the ``url`` deployment.
        operator_token: Its operator token.
        database_url: The shared record store (default: one SQLite file in a shared folder).
        shared_state_url: The shared state (``CALLAGENT_SHARED_STATE_URL``; "" = none).
        workers: Server processes per agent (``CALLAGENT_WORKERS``, ``serve --workers``).
        env: More settings for every agent started here.
        verbose: Let the agents' logs through.
        sip: Call over SIP: the ``url`` deployment's SIP URI, or ``""`` for the agents
            started here (each then listens for SIP on a free loopback port).
    """
    if url:
        target = Target.from_url(url, auth_token=auth_token, operator_token=operator_token)
        if sip:
            target = target.over_sip(sip)
        return Fleet([target], label=f"{url} over SIP ({target.sip_uri})" if sip else url)
    if processes > 1 and mode != "process":
        raise ValueError("several agents run as processes (--server process)")
    tmp = tempfile.TemporaryDirectory(prefix="callagent-fleet-")
    settings = {**(env or {})}
    if database_url:
        settings["DATABASE_URL"] = database_url
    if shared_state_url:
        settings[SHARED_STATE_SETTING] = shared_state_url
    if workers > 1:
        settings[WORKERS_SETTING] = str(workers)
    fleet = Fleet([], workdir=tmp)
    print(
        f"starting {processes} agent(s) on loopback ({mode}, loading models)...",
        file=sys.stderr,
        flush=True,
    )
    try:
        for _ in range(processes):
            agent = LocalAgent(
                mode=mode,
                env=settings,
                data_dir=Path(tmp.name),
                verbose=verbose,
                sip=sip is not None,
            )
            fleet.agents.append(agent)
            fleet.targets.append(await agent.start())
    except BaseException:
        await fleet.stop()
        raise
    store = "PostgreSQL" if database_url.startswith("postgres") else "one SQLite file"
    shared = f", shared state {shared_state_url.split('://')[0]}" if shared_state_url else ""
    each = f", {workers} workers each" if workers > 1 else ""
    over = ", calls over SIP" if sip is not None else ""
    fleet.label = f"{processes} agent process(es) on loopback ({store}{shared}{each}{over})"
    return fleet


def fleet_summary(fleet: Fleet) -> dict[str, Any]:
    """How the fleet is made, for the saved results."""
    return {"label": fleet.label, "processes": len(fleet.agents) or None}
