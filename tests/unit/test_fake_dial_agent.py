"""Issue 17: an outbound call from the fake Twilio REST API, answered by the REAL server.

The server places it (``POST /api/calls/outbound``: ``calls.create`` with its own signed
answer URL, which carries the attempt's token).

The server is the app ``callagent serve`` runs (``bot.web.app.create_app`` on uvicorn,
signature checks on, stream binding on); its voice webhook answers the fake's signed
answer request with ``<Connect><Stream>`` TwiML and admits the stream the fake opens. Only
the call's pipeline is a stand-in (no models): it plays an opening tone, and when the
callee keys ``#`` it replies and ends the call, which the real Twilio transport does with
a REST hang-up to the same fake, ending the simulated call as Twilio would.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import uvicorn
from pipecat.frames.frames import (
    EndWorkerFrame,
    Frame,
    InputDTMFFrame,
    OutputAudioRawFrame,
    StartFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_transport import BaseTransport
from pipecat.workers.runner import WorkerRunner

from bot.agent import load_agent
from bot.call.pipeline import CallSpec
from bot.call.runtime import Runtime
from bot.settings import Settings
from simulator.outbound.callee import Person, Press
from tests.fakes.outbound_peer import tone
from tests.fakes.twilio import FakeTwilioRest

TOKEN = "d" * 32
ACCOUNT = "AC" + "8" * 32
CALLEE = "+15555550142"
OPERATOR = "p" * 32


class OpensThenEndsOnHash(FrameProcessor):
    """The stand-in call: an opening tone; ``#`` gets a reply tone, then the call ends."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(OutputAudioRawFrame(tone(0.6), 8000, 1))
        if isinstance(frame, InputDTMFFrame) and frame.button.value == "#":
            await self.push_frame(OutputAudioRawFrame(tone(0.6), 8000, 1))
            await asyncio.sleep(1.0)
            await self.push_frame(EndWorkerFrame(reason="done"))


@pytest.fixture
async def server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, FakeTwilioRest, list[CallSpec]]]:
    from bot.web import app as app_module

    rest = FakeTwilioRest(ACCOUNT, TOKEN)
    await rest.start()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = Settings.load(
        {
            "CALLAGENT_HOST": "127.0.0.1",
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "TWILIO_API_BASE_URL": rest.base_url,
            "CALLAGENT_DATA_DIR": str(tmp_path),
            "CALLAGENT_OPERATOR_TOKEN": OPERATOR,
            "CALLAGENT_OUTBOUND_FROM_NUMBER": "+15555550100",
        }
    )
    specs: list[CallSpec] = []

    async def run_call(transport: BaseTransport, spec: CallSpec, _runtime: Any, **_: Any) -> None:
        specs.append(spec)
        worker = PipelineWorker(
            Pipeline([transport.input(), OpensThenEndsOnHash(), transport.output()]),
            params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000),
            idle_timeout_secs=60,
        )

        @transport.event_handler("on_client_disconnected")
        async def disconnected(_t: object, _ws: object) -> None:
            await worker.cancel()

        runner = WorkerRunner(handle_sigint=False, check_dangling_tasks=False)
        await runner.add_workers(worker)
        await runner.run()

    monkeypatch.setattr(app_module, "run_call", run_call)
    unused = cast(Any, None)
    runtime = Runtime(settings, load_agent(settings.agent_file), None, None, unused, unused, None)
    app = app_module.create_app(settings, runtime)
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    while not uv.started:
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}", rest, specs
    uv.should_exit = True
    await asyncio.wait_for(task, 10)
    await rest.stop()


async def test_the_agent_server_answers_a_dialled_call_end_to_end(
    server: tuple[str, FakeTwilioRest, list[CallSpec]],
) -> None:
    base_url, rest, specs = server
    rest.dialer.register(CALLEE, Person(lines=(Press("4729#"),), hello="", ring_s=0.2))
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{base_url}/api/calls/outbound",
            json={"to": CALLEE},
            headers={"Authorization": f"Bearer {OPERATOR}"},
        )
    assert response.status_code == 201, response.text
    call = await rest.dialer.wait_for_end(response.json()["provider_call_id"], timeout=30)

    assert call.error is None
    (answer,) = [d for d in call.deliveries if d.kind == "answer"]
    assert answer.status == 200  # the signed answer request passed the server's check
    assert call.emulator is not None and call.emulator.bot_utterances()  # heard the opening
    assert [s.provider_call_id for s in specs] == [call.sid]
    assert call.log.said == ["press:4729#"]
    assert [r.form.get("Status") for r in rest.requests if r.call_sid == call.sid] == [
        "completed"
    ]  # the agent hung up over REST...
    assert call.log.hung_up_by == "agent"  # ...which ended the simulated call
    assert call.status == "completed" and call.duration_s >= 1
