"""The Twilio transport inside a real Pipecat pipeline, served by uvicorn, called by the emulator.

A scripted pipeline (no models) stands in for the agent so the transport's own behaviour is
tested end to end over the real protocol: signed webhook and stream, audio both ways,
DTMF, ``clear`` on interruption, caller hang-up (``stop``), and the REST hang-up arriving
only after the bot's last words have played at the phone.
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response, WebSocket
from pipecat.frames.frames import (
    EndWorkerFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    OutputAudioRawFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from simulator.audio_codec import rms
from simulator.phone import TwilioCallEmulator, new_sid, place_call
from tests.fakes.twilio import FakeTwilioRest
from transports import twilio

TOKEN = "f" * 32
ACCOUNT = "AC" + "1" * 32


def tone(seconds: float, freq: float = 330.0) -> bytes:
    t = np.arange(int(seconds * 8000)) / 8000
    return (9000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


class ScriptedBot(FrameProcessor):
    """Greets with a 1 s tone; DTMF 1 = 3 s reply, 2 = interruption, 9 = goodbye + end."""

    def __init__(self, reply_to_voice: bool = False) -> None:
        super().__init__()
        self.digits: list[str] = []
        self.loud_frames = 0
        self._reply_to_voice = reply_to_voice
        self._quiet_frames = 0
        self._heard_voice = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            loud = rms(frame.audio) > 1000
            self.loud_frames += loud
            self._heard_voice |= loud
            self._quiet_frames = 0 if loud else self._quiet_frames + 1
            if self._reply_to_voice and self._heard_voice and self._quiet_frames >= 15:
                self._heard_voice = False  # 300 ms of quiet after speech: answer
                await self.say(0.8, freq=440)
            return
        if isinstance(frame, InputDTMFFrame):
            digit = frame.button.value
            self.digits.append(digit)
            if digit == "1":
                await self.say(3.0)
            elif digit == "2":
                await self.broadcast_interruption()
            elif digit == "9":
                await self.say(1.5, freq=550)
                await self.push_frame(EndWorkerFrame(reason="goodbye"))
            return
        await self.push_frame(frame, direction)

    async def say(self, seconds: float, freq: float = 330.0) -> None:
        await self.push_frame(OutputAudioRawFrame(tone(seconds, freq), 8000, 1))


class Harness:
    def __init__(self, rest: FakeTwilioRest) -> None:
        self.rest = rest
        self.bots: dict[str, ScriptedBot] = {}
        self.finished: dict[str, asyncio.Event] = {}
        self.port = 0
        self.reply_to_voice = False

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/twilio/voice")
        async def voice(request: Request) -> Response:
            form = {k: str(v) for k, v in (await request.form()).items()}
            url = f"http://{request.headers['host']}{request.url.path}"
            signature = request.headers.get("X-Twilio-Signature", "")
            if not twilio.validate_webhook_signature(TOKEN, url, form, signature):
                raise HTTPException(403)
            stream = f"ws://{urlsplit(url).netloc}/twilio/stream"
            xml = twilio.build_stream_twiml(stream, {"From": form["From"]})
            return Response(xml, media_type="application/xml")

        @app.websocket("/twilio/stream")
        async def stream(websocket: WebSocket) -> None:
            url = f"ws://{websocket.headers['host']}{websocket.url.path}"
            if not twilio.validate_stream_signature(
                TOKEN, url, websocket.headers.get("X-Twilio-Signature", "")
            ):
                await websocket.close(code=1008)
                return
            await websocket.accept()
            start = await twilio.read_stream_start(websocket, timeout_s=5)
            transport = twilio.create_twilio_transport(
                websocket,
                start,
                account_sid=ACCOUNT,
                auth_token=TOKEN,
                rest_base_url=self.rest.base_url,
                hang_up=True,
            )
            bot = ScriptedBot(self.reply_to_voice)
            self.bots[start.call_sid] = bot
            done = self.finished.setdefault(start.call_sid, asyncio.Event())
            worker = PipelineWorker(
                Pipeline([transport.input(), bot, transport.output()]),
                params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000),
                idle_timeout_secs=60,
            )

            @transport.event_handler("on_client_connected")
            async def connected(_t: object, _ws: object) -> None:
                await bot.say(1.0)

            @transport.event_handler("on_client_disconnected")
            async def disconnected(_t: object, _ws: object) -> None:
                await worker.cancel()

            runner = WorkerRunner(handle_sigint=False, check_dangling_tasks=False)
            await runner.add_workers(worker)
            try:
                await runner.run()
            finally:
                done.set()

        return app


@pytest.fixture
async def harness():
    async with FakeTwilioRest(ACCOUNT, TOKEN) as rest:
        h = Harness(rest)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        h.port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(h.app(), log_level="warning", lifespan="off"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.02)
        yield h
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def call(h: Harness) -> TwilioCallEmulator:
    return await place_call(f"http://127.0.0.1:{h.port}", auth_token=TOKEN, account_sid=ACCOUNT)


async def test_greeting_dtmf_and_caller_audio_flow_both_ways(harness):
    c = await call(harness)
    start = await c.wait_for_bot_speech_start(timeout=5)
    end = await c.wait_for_bot_silence(0.4, timeout=5)
    assert end - start == pytest.approx(1.0, abs=0.15)  # the whole greeting played
    turn = await c.say(b"\x00" * 1600 + tone(0.5, 200))
    await c.press("1")
    reply = await c.wait_for_bot_speech_start(timeout=5, after=turn.caller_end_s)
    await c.wait_for_bot_silence(0.4, timeout=8)
    bot = harness.bots[c.call_sid]
    assert bot.digits == ["1"]
    assert bot.loud_frames >= 10  # the caller's voice reached the pipeline
    assert reply > turn.caller_end_s and c.clears_received == 0
    await c.hang_up()
    await asyncio.wait_for(harness.finished[c.call_sid].wait(), 10)  # stop ended the pipeline
    await asyncio.sleep(0.2)
    assert harness.rest.requests == []  # the caller hung up: nothing to hang up over REST


async def test_interruption_clears_the_audio_buffered_at_the_phone(harness):
    c = await call(harness)
    await c.wait_for_bot_silence(0.4, timeout=5)
    await asyncio.sleep(0.2)
    await c.press("1")
    start = await c.wait_for_bot_speech_start(timeout=5, after=c.now())
    await asyncio.sleep(0.5)
    await c.press("2")
    end = await c.wait_for_bot_silence(0.4, timeout=5)
    assert c.clears_received == 1
    assert end - start < 2.0  # most of the 3 s reply never played
    await c.hang_up()


async def test_goodbye_is_heard_in_full_before_the_rest_hang_up(harness):
    c = await call(harness)
    harness.rest.on_status_change(lambda _call: asyncio.ensure_future(c.remote_hang_up()))
    await c.wait_for_bot_silence(0.4, timeout=5)
    await asyncio.sleep(0.2)
    await c.press("9")
    start = await c.wait_for_bot_speech_start(timeout=5, after=c.now())
    await c.wait_closed(timeout=15)
    segments = [s for s in c.bot_utterances() if s[0] >= start - 0.01]
    assert segments and segments[0][1] - segments[0][0] == pytest.approx(1.5, abs=0.15)
    hang_up = harness.rest.hang_ups(c.call_sid)
    assert len(hang_up) == 1 and hang_up[0].form == {"Status": "completed"}
    await asyncio.wait_for(harness.finished[c.call_sid].wait(), 10)


async def test_bad_messages_do_not_break_the_call(harness):
    c = await call(harness)
    await c.wait_for_bot_speech_start(timeout=5)
    for raw in ('{"event": "media", "media": {"payload": "@@@"}}', "not json", '{"event": "x"}'):
        await c._ws.send(raw)  # noqa: SLF001 - deliberately off-protocol
    await c.wait_for_bot_silence(0.4, timeout=5)
    await c.press("1")
    await c.wait_for_bot_speech_start(timeout=5, after=c.now() - 0.1)
    assert not c.closed
    await c.hang_up()


async def test_unsigned_requests_are_rejected(harness):
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"http://127.0.0.1:{harness.port}/twilio/voice", data={"From": "+15555550123"}
        )
    assert r.status_code == 403
    c = TwilioCallEmulator(f"ws://127.0.0.1:{harness.port}/twilio/stream", call_sid=new_sid("CA"))
    with pytest.raises(Exception, match="403"):
        await c.connect()


async def test_latency_bench_measures_every_turn(harness):
    from simulator.bench.latency import LatencyReport, measure_latency

    harness.reply_to_voice = True
    clips = {"a": b"\x00" * 800 + tone(0.6, 200), "b": tone(0.9, 250) + b"\x00" * 2400}
    report = LatencyReport(url="harness")
    await measure_latency(
        f"ws://127.0.0.1:{harness.port}/twilio/stream",
        [["a", "b"], ["b"]],
        clips,
        auth_token=TOKEN,
        reply_timeout_s=10,
        report=report,
        progress=lambda _line: None,
    )
    summary = report.summary()
    assert summary["turns"] == 3 and summary["answered"] == 3
    assert all(t.latency_ms > 0 for t in report.turns)
    assert summary["p50_ms"] <= summary["p95_ms"] <= summary["max_ms"]
    assert len(report.greeting_ms) == 2
