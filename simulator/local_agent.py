"""The agent started here on loopback, with a fake Twilio REST API: the simulations' agent.

:class:`LocalAgent` is the one way the simulator, the benches and the tests start the
agent: in this process (a server thread, through the product's one factory
``bot.web.app.create_app``) or as a child process (``callagent serve``), with Twilio
credentials pointing at its :class:`~simulator.fake_twilio.FakeTwilioRest` so transfers
and REST hang-ups are seen. :meth:`LocalAgent.start` returns the
:class:`~simulator.target.Target` to call.
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
from pathlib import Path
from typing import Any

import httpx

from simulator.fake_twilio import FakeTwilioRest
from simulator.ports import free_tcp_port, free_udp_port
from simulator.target import SIM_ACCOUNT_SID, STREAM_PATH, RestRoutes, Target

SIM_FROM_NUMBER = "+15555550100"
"""The caller id the agent dials from (the reference clinic's number)."""
SIM_RING_SECS = 10
"""How long the agent lets a simulated call ring (its ``Timeout``): no-answer comes sooner."""


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
