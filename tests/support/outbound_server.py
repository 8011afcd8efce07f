"""The real server on a loopback port, dialling through the simulator's fake Twilio REST API.

:class:`OutboundServers` starts ``bot.web.app.create_app`` on uvicorn with Twilio pointed
at :class:`~simulator.fake_twilio.FakeTwilioRest` (whose callees answer, and whose
callbacks are signed as Twilio signs them). Only the call's pipeline is a stand-in (no
models): the real transport, the outbound observers the server adds, and a keypad that
stands for the dialogue (1: confirmed, 9: opt out, 0: hang up), which
:class:`KeypadCallee` presses.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import uvicorn
from pipecat.frames.frames import EndWorkerFrame, Frame, InputDTMFFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_transport import BaseTransport
from pipecat.workers.runner import WorkerRunner
from twilio.request_validator import RequestValidator

from bot.agent import load_agent
from bot.call.pipeline import CallSpec, live_call
from bot.call.runtime import Runtime
from bot.outbound.listeners import AttemptListener
from bot.settings import Settings
from integrations.outbound.store import Attempt
from processors.frames import DoNotCallFrame, OutcomeFrame
from simulator.fake_twilio import FakeTwilioRest
from simulator.outbound.callee import CalleeLog, Person
from simulator.outbound.dialed_call import DialedCall
from simulator.phone import CallEndedError, TwilioCallEmulator

TOKEN = "e" * 32
OPERATOR = "o" * 32
ACCOUNT = "AC" + "7" * 32
OUR_NUMBER = "+15555550100"
CALLEE = "+15555550123"
BEARER = {"Authorization": f"Bearer {OPERATOR}"}


class Keypad(FrameProcessor):
    """Stands for the dialogue: 1 confirms, 9 opts out, 0 hangs up."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputDTMFFrame):
            key = frame.button.value
            if key == "1":
                await self.push_frame(OutcomeFrame(disposition="confirmed", intent="confirm"))
            elif key == "9":
                await self.push_frame(DoNotCallFrame(reason="spoken"))
            elif key == "0":
                await self.push_frame(EndWorkerFrame(reason="keypad 0"))
            return
        await self.push_frame(frame, direction)


@dataclass(frozen=True, kw_only=True)
class KeypadCallee(Person):
    """A person who keys the stand-in call's keypad and leaves the hang-up to the agent.

    Parameters:
        go: Keys nothing until it is set (the test's cue), when given.
    """

    hello: str = ""  # no speech: the stand-in call has no models
    hang_up_at_end: bool = False
    reply_timeout_s: float = 0.1  # the stand-in never speaks: key at once
    ring_s: float = 0.2
    go: asyncio.Event | None = field(default=None, compare=False)

    async def play(
        self, call: TwilioCallEmulator, log: CalleeLog, *, greeting_ended_s: float | None
    ) -> None:
        """Wait for ``go``, key the lines, then stay on the line until the agent hangs up."""
        if self.go is not None:
            await self.go.wait()
        await super().play(call, log, greeting_ended_s=greeting_ended_s)
        try:
            await call.wait_closed(30)
        except (TimeoutError, CallEndedError):
            pass


class Ended:
    """An attempt listener that keeps what it heard."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []

    async def attempt_ended(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)


class OutboundServer:
    """The real app on a loopback port, its fake Twilio, and the calls it ran."""

    def __init__(self, rest: FakeTwilioRest, port: int, runtime: Runtime) -> None:
        self.rest = rest
        self.port = port
        self.runtime = runtime
        self.specs: list[CallSpec] = []
        self.app: Any = None
        self.finished = asyncio.Event()
        self.ended = Ended()
        self.client = httpx.AsyncClient(base_url=self.base_url, timeout=10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def creates(self) -> list[dict[str, str]]:
        """The form of every authorised ``POST /Calls.json`` the fake received, in order."""
        return [
            r.form
            for r in self.rest.requests
            if r.authorized and r.method == "POST" and r.path.endswith("/Calls.json")
        ]

    def created(self) -> list[str]:
        """The CallSids the fake created, in order."""
        return list(self.rest.dialer.calls)

    def dialed(self, call_sid: str) -> DialedCall:
        """What the fake did with one call."""
        return self.rest.dialer.calls[call_sid]

    async def run_call(
        self, transport: BaseTransport, spec: CallSpec, runtime: Runtime, **hooks: Any
    ) -> None:
        self.specs.append(spec)
        try:
            await run_stand_in_call(transport, spec, runtime, Keypad(), hooks)
        finally:
            self.finished.set()

    async def post_signed(self, url: str, form: dict[str, str]) -> httpx.Response:
        """POST ``form`` to ``url`` signed as Twilio signs it (full URL, query included)."""
        signature = RequestValidator(TOKEN).compute_signature(url, form)
        return await self.client.post(url, data=form, headers={"X-Twilio-Signature": signature})

    async def place(self, **body: Any) -> httpx.Response:
        payload = {"to": CALLEE, "channel": "twilio", **body}
        return await self.client.post("/api/calls/outbound", json=payload, headers=BEARER)

    async def attempt(self, attempt_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/calls/outbound/{attempt_id}", headers=BEARER)
        assert response.status_code == 200
        return response.json()


class OutboundServers:
    """Starts servers for one test (``start``) and stops them all (``close``)."""

    def __init__(self, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self._data_dir = data_dir
        self._monkeypatch = monkeypatch
        self._started: list[tuple[uvicorn.Server, asyncio.Task[None], OutboundServer]] = []

    async def start(
        self, setup: Callable[[Runtime], None] | None = None, **env: str
    ) -> OutboundServer:
        """The server with these extra settings, its fake Twilio started.

        ``setup`` is handed the runtime before the app is built (e.g. to share its state
        with another server's, as another process of the deployment).
        """
        from bot.web import app as app_module

        rest = FakeTwilioRest(ACCOUNT, TOKEN)
        await rest.start()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        settings = Settings.load(
            {
                "CALLAGENT_HOST": "127.0.0.1",
                "CALLAGENT_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "CALLAGENT_OPERATOR_TOKEN": OPERATOR,
                "CALLAGENT_OUTBOUND_FROM_NUMBER": OUR_NUMBER,
                "TWILIO_ACCOUNT_SID": ACCOUNT,
                "TWILIO_AUTH_TOKEN": TOKEN,
                "TWILIO_API_BASE_URL": rest.base_url,
                "CALLAGENT_DATA_DIR": str(self._data_dir),
                "CALLAGENT_CALLER_ID_STORAGE": "plain",
                **env,
            }
        )
        unused = cast(Any, None)  # the stand-in call uses no models
        runtime = Runtime(
            settings, load_agent(settings.agent_file), None, None, unused, unused, None
        )
        if setup is not None:
            setup(runtime)
        server = OutboundServer(rest, port, runtime)
        self._monkeypatch.setattr(app_module, "run_call", server.run_call)
        app = server.app = app_module.create_app(settings, runtime)
        app.state.outbound.listeners.add(cast(AttemptListener, server.ended))
        uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        task = asyncio.create_task(uv.serve(sockets=[sock]))
        while not uv.started:
            await asyncio.sleep(0.02)
        self._started.append((uv, task, server))
        return server

    async def close(self) -> None:
        """Stop each fake Twilio (its calls still running end), then its server."""
        for uv, task, server in self._started:
            await server.rest.stop()
            await server.client.aclose()
            uv.should_exit = True
            await asyncio.wait_for(task, 10)


async def run_stand_in_call(
    transport: BaseTransport,
    spec: CallSpec,
    runtime: Runtime,
    dialogue: FrameProcessor,
    hooks: dict[str, Any],
) -> None:
    """Run a call's stand-in pipeline (no models) to its end: the real transport,
    ``dialogue``, the recorder and the observers the server adds, the call among the
    runtime's live calls as ``run_call`` keeps it."""
    records = runtime.records
    assert records is not None
    recorder = records.recorder(
        call_id=spec.call_id,
        transport=spec.transport_kind,
        caller=spec.caller,
        direction=spec.direction,
        agent=runtime.agent.name,
        provider_call_id=spec.provider_call_id,
        outbound=spec.outbound,
    )
    worker = PipelineWorker(
        Pipeline([transport.input(), dialogue, transport.output()]),
        params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000),
        observers=[recorder, *hooks.get("observers", [])],
        idle_timeout_secs=60,
    )
    if hooks.get("on_worker"):
        hooks["on_worker"](worker)

    @transport.event_handler("on_client_disconnected")
    async def disconnected(_t: object, _ws: object) -> None:
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=False, check_dangling_tasks=False)
    await runner.add_workers(worker)
    runtime.live.add(live_call(spec, transport, worker))
    try:
        await runner.run()
    finally:
        runtime.live.remove(spec.call_id)
