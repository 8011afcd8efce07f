"""``callagent serve`` in its own process with SIP on free loopback ports, for real-peer tests."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from simulator.ports import free_rtp_port, free_tcp_port, free_udp_port
from tests.support.env import scrubbed_environ

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_TOKEN = "sip-peers-operator-token-0123456789"


@dataclass
class ServedSip:
    """A running ``callagent serve`` with SIP.

    Parameters:
        process: The server process.
        base_url: Its HTTP address.
        sip_address: ``127.0.0.1:port`` of its SIP socket (a SIPp target).
        log: Its console log.
        workdir: Its working directory (data under ``data/``).
    """

    process: subprocess.Popen[bytes]
    base_url: str
    sip_address: str
    log: Path
    workdir: Path

    def log_text(self) -> str:
        """The server's log so far."""
        return self.log.read_text(errors="replace")

    def sip_uri(self, agent: str = "dental_front_desk") -> str:
        """A URI calling ``agent``."""
        return f"sip:{agent}@{self.sip_address}"

    async def ready(self) -> dict[str, Any]:
        """``/readyz``."""
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{self.base_url}/readyz")).json()

    async def until_no_calls(self, timeout_s: float = 30.0) -> None:
        """Wait until the server carries no call."""
        async with asyncio.timeout(timeout_s):
            while (await self.ready())["calls"]:
                await asyncio.sleep(0.2)

    async def sip_records(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest SIP call records (operator API), newest first."""
        headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers) as client:
            calls = (await client.get("/api/calls", params={"limit": limit})).json()["calls"]
        return [c for c in calls if c["transport"] == "sip"]

    async def sip_record(self, call_id: str) -> dict[str, Any]:
        """The record of the SIP call with this Call-ID, with its turns and escalation."""
        matches = [r for r in await self.sip_records(limit=200) if r["provider_call_id"] == call_id]
        assert len(matches) == 1, f"{len(matches)} records for the Call-ID"
        headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers) as client:
            return (await client.get(f"/api/calls/{matches[0]['id']}")).json()


async def _until_serving_sip(served: ServedSip, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if served.process.poll() is not None:
                raise AssertionError(f"callagent serve exited:\n{served.log_text()[-3000:]}")
            try:
                # a new connection each time: under --workers N any worker may answer it
                async with httpx.AsyncClient() as client:
                    ready = (await client.get(f"{served.base_url}/readyz")).json()
            except (httpx.HTTPError, ValueError):
                ready = {}
            if (ready.get("sip") or {}).get("role") == "serving":
                return
            await asyncio.sleep(0.5)


@contextmanager
def serve_sip(
    workdir: Path, env: Mapping[str, str] | None = None, *, ready_timeout_s: float = 300.0
) -> Iterator[ServedSip]:
    """Start ``callagent serve`` (real models) with SIP and wait until it serves SIP.

    Args:
        workdir: Its working directory.
        env: More settings (``CALLAGENT_...``) on top of the defaults.
        ready_timeout_s: Longest wait for the models to load.
    """
    http_port, sip_port, rtp = free_tcp_port(), free_udp_port(), free_rtp_port()
    full_env = scrubbed_environ() | {
        "PYTHONPATH": str(ROOT),
        "CALLAGENT_DATA_DIR": str(workdir / "data"),
        "CALLAGENT_SIP_LISTEN": f"127.0.0.1:{sip_port}",
        "CALLAGENT_SIP_RTP_PORTS": f"{rtp}-{rtp + 99}",
        "CALLAGENT_OPERATOR_TOKEN": OPERATOR_TOKEN,
        "CALLAGENT_DRAIN_SECS": "5",
        **(env or {}),
    }
    log = workdir / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--port", str(http_port)],
            cwd=workdir,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = ServedSip(
        process, f"http://127.0.0.1:{http_port}", f"127.0.0.1:{sip_port}", log, workdir
    )
    try:
        asyncio.run(_until_serving_sip(served, ready_timeout_s))
        yield served
    finally:
        process.send_signal(signal.SIGTERM)  # drains, then exits
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
