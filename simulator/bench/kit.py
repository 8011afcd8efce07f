"""Shared pieces of the phone benchmarks (``callagent bench barge-in|concurrency|soak``).

Caller clips, the agent under test (started here, or a running one), process CPU and
memory sampling, a line plot as SVG, and saving results. Every
benchmark prints figures and saves them; none asserts on them.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from simulator.local_agent import LocalAgent
from simulator.target import Target
from simulator.voices import caller_voice
from simulator.voices.noise import normalize_active

QUESTIONS = (
    "What are your opening hours?",
    "Where are you located?",
    "How much does a cleaning cost?",
    "Do you take my insurance?",
    "Are you taking new patients?",
    "Do you offer payment plans?",
    "Do you see children?",
    "Are you open on Saturday?",
)
"""Questions the reference agent answers directly (any agent with FAQ intents works)."""
LONG_ANSWERS = (
    "What are your opening hours?",
    "How much does a cleaning cost?",
    "Do you take my insurance?",
    "Where are you located?",
)
"""Questions whose answers last several seconds (room to barge in)."""
INTERRUPTIONS = (
    "Sorry, where exactly are you located?",
    "Wait, do you take my insurance?",
    "Actually, how much is a checkup?",
    "Hold on, are you open on Saturday?",
)
BACKCHANNELS = ("Okay.", "Mhm.", "Uh huh.", "Right.", "Okay, okay.", "I see.")


def clips(texts: Sequence[str], voice: str = "slt") -> dict[str, bytes]:
    """Each text as the caller says it, normalised to the simulation's speech level."""
    return {t: normalize_active(caller_voice.synthesize(t, voice=voice)) for t in texts}


@dataclass
class Agent:
    """The agent under test and how to reach it."""

    target: Target
    local: LocalAgent | None
    pid: int | None

    async def stop(self) -> None:
        """Stop it if it was started here."""
        if self.local is not None:
            await self.local.stop()

    async def diagnostics(self, *, collect: bool = False) -> dict[str, Any] | None:
        """``/api/diagnostics`` (needs the operator token), or None."""
        t = self.target
        if not (t.base_url and t.operator_token):
            return None
        async with httpx.AsyncClient() as client:
            r = await client.get(
                f"{t.base_url}/api/diagnostics",
                params={"collect": str(collect).lower()},
                headers={"Authorization": f"Bearer {t.operator_token}"},
                timeout=30,
            )
        return r.json() if r.status_code == 200 else None

    async def active_calls(self) -> int | None:
        """Calls in progress, from ``/healthz``."""
        if not self.target.base_url:
            return None
        async with httpx.AsyncClient() as client:
            r = await client.get(f"{self.target.base_url}/healthz", timeout=10)
        return int(r.json().get("active_calls", 0))


async def start_agent(
    url: str | None,
    *,
    mode: str,
    auth_token: str | None = None,
    operator_token: str | None = None,
    env: dict[str, str] | None = None,
    verbose: bool = False,
    sip: str | None = None,
) -> Agent:
    """A running agent (``url``), or one started here in ``mode`` (thread or process).

    With ``sip`` (a ``sip:`` URI) the target also knows the agent's SIP address
    (:attr:`Target.sip_uri`); an agent started here listens for SIP on that URI's port.
    """
    if url:
        target = Target.from_url(url, auth_token=auth_token, operator_token=operator_token)
        return Agent(target.over_sip(sip) if sip else target, None, None)
    print(
        f"starting the agent on loopback ({mode}, loading models)...", file=sys.stderr, flush=True
    )
    from simulator.phone import SipTarget

    sip_port = SipTarget.parse(sip).port if sip else 0
    local = LocalAgent(mode=mode, env=env, verbose=verbose, sip_port=sip_port)
    target = await local.start()
    return Agent(target, local, local.pid)


async def start_agent_for(args: Any) -> Agent:
    """:func:`start_agent` from a bench's parsed arguments (``simulator.bench.args``)."""
    return await start_agent(
        args.url,
        mode=args.server,
        auth_token=args.auth_token,
        operator_token=getattr(args, "operator_token", None),
        verbose=args.verbose,
        sip=getattr(args, "sip", None),
    )


def fmt(stats: dict[str, Any]) -> str:
    """``p50 412 ms  p95 655 ms  max 801 ms  (n=60)``."""

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f} ms"

    return (
        f"p50 {ms(stats['p50_ms'])}  p95 {ms(stats['p95_ms'])}  max {ms(stats['max_ms'])}  "
        f"(n={stats['n']})"
    )


def save_json(path: Path | None, data: dict[str, Any]) -> None:
    """Write the results (and say where)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))
    print(f"saved {path}")


def jitter(rng: random.Random, low: float, high: float) -> float:
    """A random delay in [low, high) seconds."""
    return rng.uniform(low, high)
