"""Where simulated calls go: a running agent (by URL), or one started here on loopback.

A :class:`Target` says how to reach the agent's Twilio endpoints (or its SIP endpoint:
:attr:`Target.sip_uri`, calls then go over SIP/RTP), how to read its
per-call events (operator token; :mod:`simulator.events_client` reads them), and, when
the agent was started here, gives the fake Twilio REST API its hang-ups and transfers go
to. :class:`LocalAgent` is the one
way the simulator, the benches and the tests start the agent: in this process (a server
thread, through the product's one factory ``bot.web.app.create_app``) or as a child
process (``callagent serve``), with Twilio credentials pointing at its
:class:`~simulator.fake_twilio.FakeTwilioRest` so transfers and REST hang-ups are seen.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from integrations.speech.base import SpeechRecognizer
from simulator.fake_twilio import CallUpdate, FakeTwilioRest
from simulator.phone import PhoneCall, TwilioCallEmulator, place_call, place_sip_call
from simulator.ports import free_tcp_port, free_udp_port

SIM_ACCOUNT_SID = "AC" + "5" * 32
SIM_FROM_NUMBER = "+15555550100"
"""The caller id the agent dials from (the reference clinic's number)."""
SIM_RING_SECS = 10
"""How long the agent lets a simulated call ring (its ``Timeout``): no-answer comes sooner."""
STREAM_PATH = "/twilio/stream"


@dataclass
class RestRoutes:
    """Sends the fake REST API's call updates to the simulated call they concern."""

    _routes: dict[str, Callable[[CallUpdate], object]] = field(default_factory=dict)

    def register(self, call_sid: str, handler: Callable[[CallUpdate], None]) -> None:
        """Deliver ``call_sid``'s updates to ``handler`` (in the loop that registered it)."""
        loop = asyncio.get_running_loop()

        def deliver(update: CallUpdate) -> None:
            loop.call_soon_threadsafe(handler, update)

        self._routes[call_sid] = deliver

    def unregister(self, call_sid: str) -> None:
        """Stop delivering ``call_sid``'s updates."""
        self._routes.pop(call_sid, None)

    def __call__(self, update: CallUpdate) -> None:
        """The fake's update hook."""
        route = self._routes.get(update.call_sid)
        if route is not None:
            route(update)


@dataclass
class Target:
    """How to reach the agent under test.

    Parameters:
        stream_url: The Twilio Media Streams WebSocket (``ws://host/twilio/stream``).
        base_url: The server's HTTP base URL (webhook, events, diagnostics), if known.
        auth_token: Twilio auth token to sign requests with (servers that check).
        operator_token: Reads ``/api/calls/{id}/events`` (intent and escalation checks).
        via_webhook: Place calls through ``/twilio/voice`` (TwiML) instead of the stream.
        rest: Routes of the fake Twilio REST API the agent talks to (agent started here).
        fake_twilio: That fake itself (agent started here): outbound calls ring its callees.
        transcriber: ASR for what the caller heard.
        label: Where it is, for reports.
        sip_uri: Place the calls over SIP to this URI (``sip:agent@host:port``) instead of
            Twilio Media Streams; the URLs above still serve the events and records.
    """

    stream_url: str
    base_url: str | None = None
    auth_token: str | None = None
    operator_token: str | None = None
    via_webhook: bool = False
    rest: RestRoutes | None = None
    transcriber: SpeechRecognizer | None = None
    label: str = ""
    fake_twilio: FakeTwilioRest | None = None
    sip_uri: str | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        auth_token: str | None = None,
        operator_token: str | None = None,
    ) -> Target:
        """A running agent: ``ws(s)://host/twilio/stream``, or its base ``http(s)://host``.

        With an ``http(s)`` URL calls are placed like Twilio does (voice webhook, then the
        stream its TwiML names).
        """
        parts = urlsplit(url)
        if parts.scheme in ("ws", "wss"):
            http = "https" if parts.scheme == "wss" else "http"
            base = urlunsplit((http, parts.netloc, "", "", ""))
            return cls(url, base, auth_token, operator_token, label=url)
        if parts.scheme in ("http", "https"):
            ws = "wss" if parts.scheme == "https" else "ws"
            stream = urlunsplit((ws, parts.netloc, STREAM_PATH, "", ""))
            base = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
            return cls(stream, base, auth_token, operator_token, via_webhook=True, label=url)
        raise ValueError("the URL must be ws(s)://HOST/twilio/stream or http(s)://HOST")

    def over_sip(self, sip_uri: str) -> Target:
        """The same agent, called over SIP at ``sip_uri`` (checked: ``sip:user@host[:port]``).

        Raises:
            ValueError: not a SIP URI.
        """
        from simulator.phone import SipTarget

        uri = SipTarget.parse(sip_uri).uri
        label = f"{self.label} over SIP ({uri})" if self.label else uri
        return replace(self, sip_uri=uri, label=label)

    async def dial(self, **emulator_kwargs: Any) -> PhoneCall:
        """Place one call and return it connected.

        Over SIP when :attr:`sip_uri` is set (an INVITE, then RTP). Else through the voice
        webhook like Twilio when :attr:`via_webhook` (a server that checks signatures admits
        only streams its webhook issued a token for), else straight to the stream (a
        server on loopback without an auth token).

        Args:
            **emulator_kwargs: Passed to :class:`~simulator.phone.TwilioCallEmulator`
                or :class:`~simulator.phone.SipCallEmulator` (``from_number``,
                ``background``, ``line``...).
        """
        if self.sip_uri:
            return await place_sip_call(self.sip_uri, **emulator_kwargs)
        if self.via_webhook and self.base_url:
            return await place_call(
                self.base_url,
                auth_token=self.auth_token,
                account_sid=SIM_ACCOUNT_SID if self.rest is not None else None,
                **emulator_kwargs,
            )
        call = TwilioCallEmulator(self.stream_url, auth_token=self.auth_token, **emulator_kwargs)
        await call.connect()
        return call


# Starting the agent here


Companions = Callable[[AsyncExitStack], Awaitable[Mapping[str, str]]]
"""Starts services the agent talks to (e.g. an agent-desktop webhook) and returns the
settings (environment variables) that point the agent at them; their clean-up goes on
the stack. Runs before the agent, in the event loop that serves it."""


class LocalAgent:
    """The agent on loopback with a fake Twilio REST API, for simulations, benches and tests.

    ``mode="thread"`` serves it in this process (its models are reused to transcribe,
    see :attr:`runtime`); ``mode="process"`` runs ``callagent serve`` as a child process
    (its CPU time and memory are then its own, see :attr:`pid`).

    The agent dials outbound calls through the same fake (``TWILIO_API_BASE_URL``, from
    :data:`SIM_FROM_NUMBER`), whose callees answer on :attr:`rest` ``.dialer``; its
    ``CALLAGENT_PUBLIC_URL`` is its own loopback address, so the answer URL it gives
    Twilio and the signatures it checks are its own, as on a deployed server.

    Example::

        local = LocalAgent(env={"CALLAGENT_SCREEN_POP_SECRET": "s"})
        target = await local.start()
        ...  # place calls at target.base_url; local.rest holds the REST requests
        await local.stop()
    """

    def __init__(
        self,
        *,
        mode: str = "thread",
        env: Mapping[str, str] | None = None,
        data_dir: Path | None = None,
        verbose: bool = False,
        ready_timeout_s: float = 600.0,
        use_environment: bool = True,
        companions: Companions | None = None,
        serve_args: Sequence[str] = (),
        sip: bool = False,
        sip_port: int = 0,
    ):
        """Prepare (nothing starts until :meth:`start`).

        Args:
            mode: ``thread`` or ``process``.
            env: Extra settings (environment variables) for the agent.
            data_dir: The agent's data folder (default: a fresh temporary one, so
                simulated calls never land in the real call records).
            verbose: Let the agent's log through (process mode: to stderr).
            ready_timeout_s: Longest wait for the agent to load its models.
            use_environment: Thread mode: configure the agent from ``.env`` and this
                process's environment too (False: from the simulation's settings and
                ``env`` only, as tests want).
            companions: Services started beside the agent (see :data:`Companions`).
            serve_args: More ``callagent serve`` arguments (process mode, e.g.
                ``("--workers", "2")``).
            sip: Also listen for SIP on a loopback UDP port (``CALLAGENT_SIP_LISTEN``); the
                target's calls then go over SIP (:attr:`Target.sip_uri`).
            sip_port: That port (default: a free one).
        """
        if mode not in ("thread", "process"):
            raise ValueError("mode must be thread or process")
        self.mode = mode
        self._env = dict(env or {})
        self._use_environment = use_environment
        self._companions = companions
        self._serve_args = tuple(serve_args)
        self._stack = AsyncExitStack()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._data_dir = data_dir
        self._verbose = verbose
        self._ready_timeout_s = ready_timeout_s
        self.auth_token = secrets.token_hex(16)
        self.operator_token = secrets.token_urlsafe(24)
        self.routes = RestRoutes()
        self.account_sid = SIM_ACCOUNT_SID
        self.rest = FakeTwilioRest(SIM_ACCOUNT_SID, self.auth_token)
        self.rest.on_update(self.routes)
        self.pid: int | None = None
        self.runtime: Any = None
        """The agent's shared models and services (thread mode), else None."""
        self._server: Any = None
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.base_url = ""
        self.sip = sip or bool(sip_port)
        self._fixed_sip_port = sip_port
        self.sip_port = sip_port

    @property
    def stream_url(self) -> str:
        """The agent's Twilio Media Streams WebSocket (``ws://host:port/twilio/stream``)."""
        return self.base_url.replace("http://", "ws://") + STREAM_PATH

    @property
    def sip_uri(self) -> str | None:
        """The agent's SIP address (``sip:agent@127.0.0.1:port``) when it listens for SIP."""
        return f"sip:agent@127.0.0.1:{self.sip_port}" if self.sip and self.sip_port else None

    def _sip_env(self) -> dict[str, str]:
        if not self.sip:
            return {}
        if not self.sip_port:
            self.sip_port = free_udp_port()
        return {
            "CALLAGENT_SIP_LISTEN": f"127.0.0.1:{self.sip_port}",
            "CALLAGENT_SIP_TRUNKS": "127.0.0.1/32",  # the simulated callers
        }

    def settings_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The settings (environment variables) the agent is configured with."""
        if self._data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="callagent-sim-")
            self._data_dir = Path(self._tmp.name)
        if not self.port:
            self.port = free_tcp_port()
        return {
            **self._sip_env(),
            "TWILIO_ACCOUNT_SID": SIM_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "TWILIO_API_BASE_URL": self.rest.base_url,
            "TWILIO_VALIDATE_SIGNATURES": "true",
            "CALLAGENT_OPERATOR_TOKEN": self.operator_token,
            "CALLAGENT_DATA_DIR": str(self._data_dir),
            "CALLAGENT_PUBLIC_URL": f"http://127.0.0.1:{self.port}",  # its own address
            "CALLAGENT_HOST": "127.0.0.1",
            "CALLAGENT_OUTBOUND_FROM_NUMBER": SIM_FROM_NUMBER,
            "CALLAGENT_OUTBOUND_RING_SECS": str(SIM_RING_SECS),
            "DATABASE_URL": "",
            # simulated callers all come from this machine, and benches place more calls
            # than one process is admitted to carry: measure the agent, not its admission
            "CALLAGENT_CALL_RATE_PER_MINUTE": "0",
            "CALLAGENT_MAX_CALLS": "1000",
            **(extra or {}),
            **self._env,
        }

    async def start(self) -> Target:
        """Start the fake REST API and the agent; returns the target to call.

        In thread mode the fake REST API runs in the server's own event loop (so it
        keeps answering whatever loop the caller uses); in process mode, in this one.
        """
        if self.mode == "thread":
            await asyncio.to_thread(self._start_thread)
        else:
            await self.rest.start()
            extra = await self._start_companions()
            await self._start_process(self.settings_env(extra))
        return Target(
            stream_url=self.stream_url,
            base_url=self.base_url,
            auth_token=self.auth_token,
            operator_token=self.operator_token,
            via_webhook=True,
            rest=self.routes,
            transcriber=getattr(self.runtime, "recognizer", None),
            label=f"in-process agent ({self.mode})"
            + (f" over SIP ({self.sip_uri})" if self.sip_uri else ""),
            fake_twilio=self.rest,
            sip_uri=self.sip_uri,
        )

    async def stop(self) -> None:
        """Stop the agent and the fake REST API."""
        if self._server is not None:
            server, self._server = self._server, None
            if server.loop is not None and server.loop.is_running():
                done = asyncio.run_coroutine_threadsafe(self._stop_services(), server.loop)
                await asyncio.wrap_future(done)
            await asyncio.to_thread(server.stop)
        if self._process is not None:
            self._process.terminate()
            try:
                await asyncio.to_thread(self._process.wait, 30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                await asyncio.to_thread(self._process.wait, 10)
            self._process = None
        if self.mode == "process" and self.base_url:
            self.base_url = ""
            await self._stop_services()
        self.port = 0
        self.sip_port = self._fixed_sip_port
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def kill(self) -> None:
        """Kill the agent process at once (SIGKILL, ``mode="process"``): no clean-up of its own.

        Its data folder stays (start another agent on it); the fake REST API keeps
        running until :meth:`stop`.
        """
        if self._process is None:
            raise RuntimeError("kill() needs an agent started with mode='process'")
        process, self._process = self._process, None
        process.kill()
        await asyncio.to_thread(process.wait, 10)

    def send_signal(self, sig: int) -> None:
        """Send the agent process a signal (``mode="process"``), e.g. SIGTERM to drain it."""
        if self._process is None:
            raise RuntimeError("send_signal() needs an agent started with mode='process'")
        self._process.send_signal(sig)

    async def wait_exit(self, timeout_s: float) -> int:
        """Wait for the agent process to exit by itself; returns its exit code.

        Raises:
            subprocess.TimeoutExpired: it still runs after ``timeout_s``.
        """
        if self._process is None:
            raise RuntimeError("wait_exit() needs an agent started with mode='process'")
        return await asyncio.to_thread(self._process.wait, timeout_s)

    async def __aenter__(self) -> LocalAgent:
        return self

    async def _start_companions(self) -> dict[str, str]:
        if self._companions is None:
            return {}
        return dict(await self._companions(self._stack))

    async def _stop_services(self) -> None:
        try:
            await self._stack.aclose()
        finally:
            await self.rest.stop()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def _start_thread(self) -> None:
        from bot.settings import Settings
        from simulator.server_thread import ThreadedServer

        holder: dict[str, Any] = {}

        async def make_app() -> Any:
            from bot.web.app import create_app

            await self.rest.start()
            env = self.settings_env(await self._start_companions())
            if self._use_environment:
                # .env first, then the environment, then the simulation's own settings
                settings = Settings.load({**os.environ, **env}, dotenv_path=Path(".env"))
            else:
                settings = Settings.load(env)
            app = create_app(settings)
            holder["runtime"] = app.state.runtime
            return app

        if not self.port:
            self.port = free_tcp_port()
        self._server = ThreadedServer(
            make_app, port=self.port, ready_timeout_s=self._ready_timeout_s
        ).start()
        self.runtime = holder.get("runtime")
        self.base_url = self._server.base_url
        self.pid = os.getpid()

    async def _start_process(self, env: dict[str, str]) -> None:
        port = self.port
        child_env = {**os.environ, **env, "PORT": str(port), "CALLAGENT_HOST": "127.0.0.1"}
        if not self._verbose:
            child_env.setdefault("CALLAGENT_LOG_LEVEL", "WARNING")
        self._process = subprocess.Popen(
            [
                *(sys.executable, "-m", "bot.cli", "serve"),
                *("--host", "127.0.0.1", "--port", str(port), *self._serve_args),
            ],
            env=child_env,
            stdout=None if self._verbose else subprocess.DEVNULL,
            stderr=None if self._verbose else subprocess.DEVNULL,
        )
        self.pid = self._process.pid
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + self._ready_timeout_s
        async with httpx.AsyncClient() as client:
            while True:
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"the agent exited during start-up (code {self._process.returncode}); "
                        "run with --verbose to see why"
                    )
                try:
                    r = await client.get(f"{self.base_url}/healthz", timeout=2)
                    if r.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the agent did not start in time")
                await asyncio.sleep(0.5)
