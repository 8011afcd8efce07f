"""The machinery behind ``callagent bench hosts``: the shared services, the hosts, the balancer.

:func:`open_lab` starts PostgreSQL (``scripts/postgres.sh``, unless ``--database-url``) and
Redis on loopback, the namespaces (:mod:`simulator.bench.netns`), HAProxy (agents
balanced; PostgreSQL, Redis and the fake Twilio REST API relayed onto the hosts'
network), the speech (embedded, or the Cartesia fake on the hosts' network), and one
``callagent serve`` per host under its own host name. :class:`Lab` reads the call
records and the per-call event streams, and kills a host.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from simulator.bench import netns
from simulator.bench.cloud_speech import Speech, cloud_speech
from simulator.bench.netns import GATEWAY, Host, LabUnavailable
from simulator.fake_twilio import CallUpdate, FakeTwilioRest
from simulator.local_agent import SIM_FROM_NUMBER
from simulator.redis_server import RedisUnavailable, local_redis
from simulator.target import SIM_ACCOUNT_SID

PG_RELAY, REDIS_RELAY, TWILIO_RELAY = 15432, 16379, 18099
POSTGRES_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"


@dataclass
class Lab:
    """The hosts under test and the services around them."""

    hosts: list[Host]
    database_url: str
    """The records' database as this process reaches it."""
    balancer_url: str = ""
    auth_token: str = ""
    operator_token: str = ""
    pids: dict[str, int] = field(default_factory=dict[str, int])
    speech: Speech | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(
        default_factory=dict[str, "subprocess.Popen[bytes]"]
    )
    stack: AsyncExitStack = field(default_factory=AsyncExitStack)
    dead: set[str] = field(default_factory=set[str])
    rest: FakeTwilioRest | None = None
    """The fake Twilio REST API the agents redirect calls through (transfers)."""

    def speech_summary(self) -> dict[str, Any]:
        """What the speech fake served (cloud), or the kind of speech."""
        return self.speech.summary() if self.speech else {}

    async def kill(self, name: str) -> None:
        """The host dies: SIGKILL every process in its namespace at once (workers too)."""
        process = self.processes.get(name)
        host = next((h for h in self.hosts if h.name == name), None)
        if process is None or host is None:
            raise ValueError(f"no host {name!r} (hosts: {', '.join(self.processes)})")
        for pid in {process.pid, *netns.namespace_pids(host)}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        await asyncio.to_thread(process.wait, 10)
        self.dead.add(name)

    async def records(self, sids: list[str]) -> dict[str, dict[str, Any]]:
        """The call records of these CallSids, each with the host that ran the call."""
        return await asyncio.to_thread(self._read_records, sids)

    def _read_records(self, sids: list[str]) -> dict[str, dict[str, Any]]:
        from sqlalchemy import bindparam, create_engine, text

        engine = create_engine(self.database_url)
        query = text(
            "SELECT provider_call_id, worker_id, outcome, end_reason, started_at, ended_at "
            "FROM calls WHERE provider_call_id IN :sids"
        ).bindparams(bindparam("sids", expanding=True))
        try:
            with engine.connect() as conn:
                rows = conn.execute(query, {"sids": sids}).mappings().all()
        except Exception as e:  # noqa: BLE001 - no table yet, database gone: no records
            print(f"could not read the call records ({type(e).__name__})", file=sys.stderr)
            return {}
        finally:
            engine.dispose()
        out: dict[str, dict[str, Any]] = {}
        for row in rows:
            record = dict(row)
            record["host"] = self._host_of(str(record.get("worker_id") or ""))
            out[str(record["provider_call_id"])] = record
        return out

    def _host_of(self, worker_id: str) -> str | None:
        from integrations.storage.workers import WorkerId

        worker = WorkerId.parse(worker_id)
        if worker is None:
            return None
        name = worker.host.split("_ns")[0]
        return next((h.name for h in self.hosts if name == host_name(h)), None)

    async def events_everywhere(self, sids: list[str]) -> dict[str, Any]:
        """For each live call, which living hosts serve its event stream (a dashboard's view)."""
        alive = [h for h in self.hosts if h.name not in self.dead]
        everywhere = 0
        answered: dict[str, list[str]] = {}
        async with httpx.AsyncClient() as client:
            for sid in sids:
                hosts = []
                for h in alive:
                    try:
                        r = await client.get(
                            f"{h.base_url}/api/calls/{sid}/events",
                            params={"after": 0},
                            headers={"Authorization": f"Bearer {self.operator_token}"},
                            timeout=5,
                        )
                    except httpx.HTTPError:
                        continue
                    if r.status_code == 200:
                        hosts.append(h.name)
                answered[sid] = hosts
                everywhere += len(hosts) == len(alive)
        return {
            "live_calls": len(sids),
            "hosts_asked": len(alive),
            "readable_on_every_host": everywhere,
            "readable_on_one_host_only": sum(len(v) == 1 for v in answered.values()),
        }

    async def transfer_callback(self, update: CallUpdate) -> dict[str, Any]:
        """Play Twilio after a transfer: post the Dial's action callback, signed.

        Once through the balancer (where Twilio sends it), then to each living host
        directly: a host that answers 200 found the call's hand-off (it is the owner, or
        the hand-offs are shared); 404 is "unknown hand-off".
        """
        from twilio.request_validator import RequestValidator

        action = dial_action(update.twiml or "")
        if action is None:
            return {"action": None}
        form = {
            "CallSid": update.call_sid,
            "AccountSid": SIM_ACCOUNT_SID,
            "DialCallStatus": "completed",
            "DialCallDuration": "0",
        }
        signature = RequestValidator(self.auth_token).compute_signature(action, form)
        headers = {"X-Twilio-Signature": signature}
        path = action.removeprefix(self.balancer_url)
        alive = [h for h in self.hosts if h.name not in self.dead]
        out: dict[str, Any] = {"action": path.split("?")[0], "hosts_ok": [], "hosts_asked": 0}
        async with httpx.AsyncClient() as client:
            try:
                r = await client.post(action, data=form, headers=headers, timeout=10)
                out["via_balancer"] = r.status_code
            except httpx.HTTPError as e:
                out["via_balancer"] = type(e).__name__
            for h in alive:
                out["hosts_asked"] += 1
                try:
                    r = await client.post(h.base_url + path, data=form, headers=headers, timeout=10)
                except httpx.HTTPError:
                    continue
                if r.status_code == 200:
                    out["hosts_ok"].append(h.name)
        return out

    async def aclose(self) -> None:
        """Stop the agents (those still alive) and the fakes."""
        for process in self.processes.values():
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    await asyncio.to_thread(process.wait, 30)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(process.pid, signal.SIGKILL)
        for host in self.hosts:  # nothing outlives its host (workers in their own sessions)
            for pid in netns.namespace_pids(host):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        await self.stack.aclose()


def dial_action(twiml: str) -> str | None:
    """The ``action`` URL of redirect TwiML's ``<Dial>`` or ``<Enqueue>`` (None if none)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(twiml)
    except ET.ParseError:
        return None
    for tag in ("Dial", "Enqueue"):
        element = root.find(f".//{tag}")
        if element is not None and element.get("action"):
            return element.get("action")
    return None


def host_name(host: Host) -> str:
    """The host name its agent runs under."""
    return f"{netns.PREFIX}-{host.name}"


@contextmanager
def postgres() -> Any:
    """A throw-away PostgreSQL on loopback (``scripts/postgres.sh``); yields its URL."""
    result = subprocess.run(
        ["bash", str(POSTGRES_SCRIPT), "start"], capture_output=True, text=True, check=False
    )
    exports = dict(
        line.removeprefix("export ").split("=", 1)
        for line in result.stdout.splitlines()
        if line.startswith("export ")
    )
    url = exports.get("CALLAGENT_TEST_DATABASE_URL")
    if not url:
        raise LabUnavailable(f"PostgreSQL did not start: {result.stderr.strip()[-300:]}")
    try:
        yield url
    finally:
        subprocess.run(
            ["bash", str(POSTGRES_SCRIPT), "stop", exports.get("PG_TEST_DIR", "")], check=False
        )


def relayed(url: str, relay_port: int, relays: dict[int, int]) -> str:
    """``url`` as the hosts reach it: a loopback service is relayed onto their network."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost") or parts.port is None:
        return url
    relays[relay_port] = parts.port
    netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port}", f"{GATEWAY}:{relay_port}")
    return urlunsplit(parts._replace(netloc=netloc))


async def open_lab(stack: ExitStack, args: Any, clips: dict[str, bytes]) -> Lab:
    """Everything for the run; the synchronous services' clean-up goes on ``stack``."""
    database_url = args.database_url or stack.enter_context(postgres())
    try:
        redis_url = stack.enter_context(local_redis())
    except RedisUnavailable as e:
        raise LabUnavailable(str(e)) from None
    hosts = stack.enter_context(netns.namespaces(args.hosts))
    lab = Lab(
        hosts,
        database_url,
        auth_token=secrets.token_hex(16),
        operator_token=secrets.token_hex(16),
    )
    try:
        rest = FakeTwilioRest(SIM_ACCOUNT_SID, lab.auth_token)
        await rest.start()
        lab.rest = rest
        lab.stack.push_async_callback(rest.stop)
        relays: dict[int, int] = {TWILIO_RELAY: rest.port}
        settings = {
            "DATABASE_URL": relayed(database_url, PG_RELAY, relays),
            "CALLAGENT_SHARED_STATE_URL": relayed(redis_url, REDIS_RELAY, relays),
            "TWILIO_API_BASE_URL": f"http://{GATEWAY}:{TWILIO_RELAY}",
        }
        config = netns.haproxy_config(hosts, relays, health_path=args.health_path)
        lab.balancer_url = stack.enter_context(netns.haproxy(config))
        lab.speech = await lab.stack.enter_async_context(
            cloud_speech(args.speech, clips, host=GATEWAY)
        )
        settings |= lab.speech.env
        for host in hosts:
            await _start_agent(lab, host, {**settings, **args.agent_settings}, args)
        await _warm_up(lab)
    except BaseException:
        await lab.aclose()
        raise
    return lab


async def _start_agent(lab: Lab, host: Host, settings: dict[str, str], args: Any) -> None:
    data_dir = tempfile.mkdtemp(prefix=f"{netns.PREFIX}-{host.name}-")
    env = {
        **os.environ,
        "TWILIO_ACCOUNT_SID": SIM_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": lab.auth_token,
        "TWILIO_VALIDATE_SIGNATURES": "true",
        "CALLAGENT_OPERATOR_TOKEN": lab.operator_token,
        "CALLAGENT_DATA_DIR": data_dir,
        "CALLAGENT_PUBLIC_URL": lab.balancer_url,  # Twilio reaches the hosts through it
        "CALLAGENT_OUTBOUND_FROM_NUMBER": SIM_FROM_NUMBER,
        "CALLAGENT_CALL_RATE_PER_MINUTE": "0",
        "CALLAGENT_MAX_CALLS": "1000",
        "CALLAGENT_LOG_LEVEL": "INFO" if args.verbose else "WARNING",
        **settings,
    }
    serve = [sys.executable, "-m", "bot.cli", "serve", "--host", host.address]
    serve += ["--port", str(netns.AGENT_PORT), *args.serve_argv]
    # its own host name (UTS namespace): peers judge it by its heartbeat, as a real host
    named = ["unshare", "--uts", "sh", "-c", f'hostname {host_name(host)} && exec "$0" "$@"']
    print(f"starting the agent on {host.name} ({host.address})...", file=sys.stderr, flush=True)
    process = subprocess.Popen(
        netns.in_namespace(host, [*named, *serve]),
        env=env,
        start_new_session=True,  # its own process group: the kill takes its workers too
        stdout=None if args.verbose else subprocess.DEVNULL,
        stderr=None if args.verbose else subprocess.DEVNULL,
    )
    lab.processes[host.name] = process
    lab.pids[host.name] = process.pid
    deadline = time.monotonic() + 600
    async with httpx.AsyncClient() as client:
        while True:
            if process.poll() is not None:
                raise LabUnavailable(
                    f"the agent on {host.name} exited at start (code {process.returncode}); "
                    "run with --verbose to see why"
                )
            try:
                if (await client.get(f"{host.base_url}/healthz", timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise LabUnavailable(f"the agent on {host.name} did not start in time")
            await asyncio.sleep(0.5)


async def balancer_view() -> dict[str, str]:
    """Each host's state at the balancer (``UP``, ``DOWN``...), from HAProxy's statistics."""
    async with httpx.AsyncClient() as client:
        try:
            r = await client.get(f"http://127.0.0.1:{netns.STATS_PORT}/stats;csv", timeout=5)
        except httpx.HTTPError:
            return {}
    return netns.backend_status(r.text) if r.status_code == 200 else {}


async def _warm_up(lab: Lab) -> None:
    """Wait until the balancer sees every host up, then one short call per host.

    (Each agent synthesises its fixed lines on its first call; round-robin over the
    webhook and stream requests gives the hosts one stream each.)
    """
    from simulator.phone import CallEndedError, place_call

    view: dict[str, str] = {}
    for _ in range(240):
        view = await balancer_view()
        if len(view) == len(lab.hosts) and all(s == "UP" for s in view.values()):
            break
        await asyncio.sleep(0.5)
    else:
        print(f"not every host is up at the balancer: {view}", file=sys.stderr)
    print("warming up (one call per host)...", file=sys.stderr, flush=True)
    for _ in lab.hosts:
        try:
            call = await place_call(
                lab.balancer_url,
                auth_token=lab.auth_token,
                account_sid=SIM_ACCOUNT_SID,
                timeout_s=30,
            )
            try:
                await call.wait_for_bot_speech_start(timeout=60)
                await call.wait_for_bot_silence(1.0, timeout=60)
            finally:
                await call.hang_up()
        except (CallEndedError, TimeoutError, OSError) as e:
            print(f"a warm-up call failed ({type(e).__name__})", file=sys.stderr)
