"""Issue 17, one outbound call: against the real server (``create_app`` on a loopback port).

Twilio's REST API is the fake (``tests/support/twilio_calls.py``); Twilio's webhooks and
callbacks are posted signed as Twilio signs them (``RequestValidator``) and the call's media
stream is the phone emulator over the real Media Streams protocol. Only the call's pipeline
is a stand-in (no models): the real transport, the outbound observers the server adds, and
a keypad that stands for the dialogue (1: confirmed, 9: opt out, 0: hang up).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

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
from bot.call.pipeline import CallSpec
from bot.call.runtime import Runtime
from bot.outbound.listeners import AttemptListener
from bot.settings import Settings
from integrations.outbound.store import Attempt
from processors.frames import DoNotCallFrame, OutcomeFrame
from simulator.phone import TwilioCallEmulator, parse_stream_twiml
from tests.support.twilio_calls import FakeTwilioCalls

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


class Ended:
    """An attempt listener that keeps what it heard."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []

    async def attempt_ended(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)


class Server:
    """The real app on a loopback port, its fake Twilio, and the calls it ran."""

    def __init__(self, rest: FakeTwilioCalls, port: int, runtime: Runtime) -> None:
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

    async def run_call(
        self, transport: BaseTransport, spec: CallSpec, runtime: Runtime, **hooks: Any
    ) -> None:
        self.specs.append(spec)
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
            Pipeline([transport.input(), Keypad(), transport.output()]),
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
        try:
            await runner.run()
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


Serve = Callable[..., Awaitable[Server]]


@pytest.fixture
async def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Serve]:
    from bot.web import app as app_module

    started: list[tuple[uvicorn.Server, asyncio.Task[None], Server]] = []

    async def start(**env: str) -> Server:
        rest = FakeTwilioCalls(ACCOUNT, TOKEN)
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
                "CALLAGENT_DATA_DIR": str(tmp_path),
                "CALLAGENT_CALLER_ID_STORAGE": "plain",
                **env,
            }
        )
        unused = cast(Any, None)  # the stand-in call uses no models
        runtime = Runtime(
            settings, load_agent(settings.agent_file), None, None, unused, unused, None
        )
        server = Server(rest, port, runtime)
        monkeypatch.setattr(app_module, "run_call", server.run_call)
        app = server.app = app_module.create_app(settings, runtime)
        app.state.outbound.listeners.add(cast(AttemptListener, server.ended))
        uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        task = asyncio.create_task(uv.serve(sockets=[sock]))
        while not uv.started:
            await asyncio.sleep(0.02)
        started.append((uv, task, server))
        return server

    yield start
    for uv, task, server in started:
        await server.client.aclose()
        uv.should_exit = True
        await asyncio.wait_for(task, 10)
        await server.rest.stop()


def webhook_form(call_sid: str, **extra: str) -> dict[str, str]:
    return {
        "CallSid": call_sid,
        "AccountSid": ACCOUNT,
        "From": OUR_NUMBER,
        "To": CALLEE,
        "Direction": "outbound-api",
        "CallStatus": "in-progress",
        **extra,
    }


def one(form: dict[str, list[str]], name: str) -> str:
    return form[name][0]


async def test_placed_call_is_created_with_signed_answer_status_and_amd_urls(serve: Serve) -> None:
    server = await serve()
    response = await server.place(agent="", variables={})
    assert response.status_code == 201, response.text
    placed = response.json()
    assert placed["provider_call_id"] == server.rest.created[0]
    assert placed["status"] == "dialing" and placed["ring_url"] is None
    form = server.rest.creates[0]
    assert one(form, "To") == CALLEE and one(form, "From") == OUR_NUMBER
    url = urlsplit(one(form, "Url"))
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{server.base_url}/twilio/voice"
    token = parse_qs(url.query)["attempt"][0]
    assert token.startswith(placed["attempt_id"] + ".")
    assert one(form, "StatusCallback") == f"{server.base_url}/twilio/call-status?attempt={token}"
    assert form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert one(form, "MachineDetection") == "DetectMessageEnd"
    assert one(form, "AsyncAmd") == "true"
    assert (
        one(form, "AsyncAmdStatusCallback")
        == f"{server.base_url}/twilio/amd-status?attempt={token}"
    )
    attempt = await server.attempt(placed["attempt_id"])
    assert attempt["provider_call_id"] == placed["provider_call_id"]
    assert attempt["state"] == "dialing" and attempt["to"] == CALLEE


async def test_a_full_outbound_call_over_media_streams_records_its_attempt(serve: Serve) -> None:
    server = await serve()
    placed = (await server.place()).json()
    call_sid = placed["provider_call_id"]
    answer_url = one(server.rest.creates[0], "Url")
    query = urlsplit(answer_url).query

    # ringing, then answered: the signed webhook answers TwiML carrying the attempt
    ringing = await server.post_signed(
        f"{server.base_url}/twilio/call-status?{query}",
        webhook_form(call_sid, CallStatus="ringing"),
    )
    assert ringing.status_code == 200 and ringing.json()["state"] == "ringing"
    twiml = await server.post_signed(answer_url, webhook_form(call_sid))
    assert twiml.status_code == 200, twiml.text
    stream = parse_stream_twiml(twiml.text)
    assert stream.parameters["callagentAttempt"] == placed["attempt_id"]
    assert "callagentStreamToken" in stream.parameters  # the attempt rides under the binding

    call = TwilioCallEmulator(
        stream.stream_url,
        call_sid=call_sid,
        account_sid=ACCOUNT,
        custom_parameters=stream.parameters,
        auth_token=TOKEN,
    )
    await call.connect()
    for _ in range(100):
        if server.specs:
            break
        await asyncio.sleep(0.02)
    spec = server.specs[0]
    assert spec.direction == "outbound" and spec.outbound is not None
    assert spec.outbound.attempt_id == placed["attempt_id"]
    assert spec.outbound.to == CALLEE and spec.caller == CALLEE
    assert (
        spec.provider_call_id == call_sid and spec.agent == server.runtime.settings.agent_file.stem
    )

    amd = await server.post_signed(
        f"{server.base_url}/twilio/amd-status?{query}",
        webhook_form(call_sid, AnsweredBy="human", MachineDetectionDuration="1800"),
    )
    assert amd.status_code == 200 and amd.json() == {"verdict": "human"}
    await call.press("1")  # the outcome: confirmed
    await call.press("9")  # "stop calling me"
    await call.press("0")
    await asyncio.wait_for(server.finished.wait(), 10)
    await call.hang_up()

    completed = webhook_form(call_sid, CallStatus="completed", CallDuration="12")
    for _ in range(2):  # Twilio may repeat a callback: the attempt ends once
        response = await server.post_signed(
            f"{server.base_url}/twilio/call-status?{query}", completed
        )
        assert response.status_code == 200 and response.json()["state"] == "ended"
    attempt = await server.attempt(placed["attempt_id"])
    assert attempt["disposition"] == "confirmed"  # the call's own outcome wins
    assert attempt["answered_by"] == "human" and attempt["call_id"] == spec.call_id
    assert [a.id for a in server.ended.attempts] == [placed["attempt_id"]]

    records = server.runtime.records
    assert records is not None
    records.store.flush()
    record = records.store.get_call(spec.call_id)
    assert record is not None
    assert record["provider_call_id"] == call_sid and record["direction"] == "outbound"
    assert record["attempt"] == 1 and record["disposition"] == "confirmed"
    assert record["amd_verdict"] == "human" and record["amd_ms"] == 1800.0

    # opted out during the call: never dialled again
    again = await server.place()
    assert again.status_code == 409 and "do-not-call" in again.json()["detail"]
    assert len(server.rest.creates) == 1


async def test_forged_unsigned_or_mismatched_outbound_webhooks_are_refused(serve: Serve) -> None:
    server = await serve()
    placed = (await server.place()).json()
    other = (await server.place(to="+15555550124")).json()
    call_sid = placed["provider_call_id"]
    answer_url = one(server.rest.creates[0], "Url")
    voice = f"{server.base_url}/twilio/voice"

    unsigned = await server.client.post(answer_url, data=webhook_form(call_sid))
    assert unsigned.status_code == 403
    no_token = await server.post_signed(voice, webhook_form(call_sid))
    assert no_token.status_code == 403
    forged = answer_url.rsplit(".", 1)[0] + ".AAAAforged"
    assert (await server.post_signed(forged, webhook_form(call_sid))).status_code == 403
    # a valid token of another attempt, for this call
    other_url = one(server.rest.creates[1], "Url")
    assert (await server.post_signed(other_url, webhook_form(call_sid))).status_code == 403
    query = urlsplit(answer_url).query
    status = f"{server.base_url}/twilio/call-status?{query}"
    assert (await server.client.post(status, data=webhook_form(call_sid))).status_code == 403
    bad = await server.post_signed(
        f"{server.base_url}/twilio/call-status?attempt=x", webhook_form(call_sid)
    )
    assert bad.status_code == 403
    assert (await server.attempt(placed["attempt_id"]))["state"] == "dialing"
    assert (await server.attempt(other["attempt_id"]))["state"] == "dialing"


@pytest.mark.parametrize(
    ("status", "disposition"),
    [("no-answer", "no-answer"), ("busy", "busy"), ("failed", "failed"), ("canceled", "no-answer")],
)
async def test_final_status_callbacks_end_the_attempt_once(
    serve: Serve, status: str, disposition: str
) -> None:
    server = await serve()
    placed = (await server.place()).json()
    query = urlsplit(one(server.rest.creates[0], "Url")).query
    url = f"{server.base_url}/twilio/call-status?{query}"
    form = webhook_form(placed["provider_call_id"], CallStatus=status)
    for _ in range(3):
        assert (await server.post_signed(url, form)).status_code == 200
    attempt = await server.attempt(placed["attempt_id"])
    assert attempt["state"] == "ended" and attempt["disposition"] == disposition
    assert len(server.ended.attempts) == 1
    # an ended attempt's answer URL lets no call in
    late = await server.post_signed(
        one(server.rest.creates[0], "Url"), webhook_form(placed["provider_call_id"])
    )
    assert late.status_code == 403


async def test_rest_error_is_recorded_with_its_code_and_not_retried(serve: Serve) -> None:
    server = await serve()
    server.rest.fail_create(400, 21211)  # invalid 'To' number
    response = await server.place()
    assert response.status_code == 502
    body = response.json()
    assert body["error_code"] == 21211 and body["disposition"] == "failed"
    assert len(server.rest.creates) == 1  # not retried
    attempt = await server.attempt(body["attempt_id"])
    assert attempt["state"] == "ended" and attempt["error_code"] == 21211
    assert [a.id for a in server.ended.attempts] == [body["attempt_id"]]


async def test_twilio_503_is_retried(serve: Serve) -> None:
    server = await serve()
    server.rest.fail_create(503, 20500)
    response = await server.place()
    assert response.status_code == 201
    assert len(server.rest.creates) == 2


async def test_bad_requests_name_the_field_and_dial_nothing(serve: Serve) -> None:
    server = await serve()
    cases = {
        "to": {"to": "not a number"},
        "agent": {"agent": "no_such_agent"},
        "channel": {"channel": "fax"},
        "variables": {"variables": ["a"]},
    }
    for field, body in cases.items():
        response = await server.place(**body)
        assert response.status_code == 400, field
        assert f"'{field}" in response.json()["detail"]
    unauthorised = await server.client.post("/api/calls/outbound", json={"to": CALLEE})
    assert unauthorised.status_code == 401
    assert server.rest.creates == []


async def test_do_not_call_number_is_refused_and_never_dialled(serve: Serve) -> None:
    server = await serve()
    store = server.runtime.records
    assert store is not None
    from integrations.outbound.store import OutboundStore

    OutboundStore(store.store.engine).dnc_add(CALLEE, "api")
    response = await server.place()
    assert response.status_code == 409
    assert server.rest.creates == []


async def test_over_the_call_cap_is_503(serve: Serve) -> None:
    server = await serve(CALLAGENT_MAX_CALLS="1")
    slot = server.app.state.admission.acquire("webrtc", "203.0.113.9")  # the only slot
    try:
        response = await server.place()
        assert response.status_code == 503 and "Retry-After" in response.headers
    finally:
        slot.release()
    assert server.rest.creates == []
    assert (await server.place()).status_code == 201


async def test_browser_ring_is_declined_once_and_ends_as_no_answer(serve: Serve) -> None:
    server = await serve()
    response = await server.place(channel="browser", to="")
    assert response.status_code == 201, response.text
    placed = response.json()
    assert placed["ring_url"].startswith("/#ring=ring.")
    ring = parse_qs(placed["ring_url"][2:])["ring"][0]
    assert parse_qs(placed["ring_url"][2:])["from"][0] == server.runtime.agent.name
    declined = await server.client.post("/api/calls/ring/decline", json={"ring": ring})
    assert declined.status_code == 200
    again = await server.client.post("/api/calls/ring/decline", json={"ring": ring})
    assert again.status_code == 403  # single use
    attempt = await server.attempt(placed["attempt_id"])
    assert attempt["state"] == "ended" and attempt["disposition"] == "no-answer"
    assert attempt["channel"] == "browser"
    assert server.rest.creates == []


SDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


async def test_browser_answer_offer_uses_the_ring_and_forged_rings_are_refused(
    serve: Serve,
) -> None:
    server = await serve()
    placed = (await server.place(channel="browser")).json()
    ring = parse_qs(placed["ring_url"][2:])["ring"][0]
    forged = ring.rsplit(".", 1)[0] + ".AAAAforged"
    offer = {"sdp": SDP, "type": "offer", "request_data": {"ring": forged}}
    refused = await server.client.post("/api/offer", json=offer)
    assert refused.status_code == 403
    offer["request_data"] = {"ring": ring}
    answered = await server.client.post("/api/offer", json=offer)
    assert answered.status_code != 403  # admitted by the ring (this SDP has no ICE to connect)
    declined = await server.client.post("/api/calls/ring/decline", json={"ring": ring})
    assert declined.status_code == 403  # the answer used the ring up
    assert (await server.attempt(placed["attempt_id"]))["state"] == "dialing"


async def test_callagent_call_places_and_waits_for_the_result(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    server = await serve()
    monkeypatch.setenv("CALLAGENT_OPERATOR_TOKEN", OPERATOR)
    argv = ["call", CALLEE, "--var", "first_name=Maria", "--server", server.base_url, "--wait"]
    command = asyncio.create_task(asyncio.to_thread(main, argv))
    while not server.rest.created:
        await asyncio.sleep(0.05)
    query = urlsplit(one(server.rest.creates[0], "Url")).query
    busy = webhook_form(server.rest.created[0], CallStatus="busy")
    assert (
        await server.post_signed(f"{server.base_url}/twilio/call-status?{query}", busy)
    ).status_code == 200
    assert await asyncio.wait_for(command, 20) == 0
    out = capsys.readouterr().out
    assert "attempt at_" in out and "ended: busy" in out


async def test_an_unanswered_browser_ring_ends_as_no_answer() -> None:
    from bot.outbound.ring import RingError, Rings
    from bot.outbound.tokens import AttemptTokens

    class Finished:
        def __init__(self) -> None:
            self.ended: list[tuple[str, str]] = []

        async def finish(self, attempt_id: str, fallback: str) -> None:
            self.ended.append((attempt_id, fallback))

    attempts = Finished()
    rings = Rings(AttemptTokens("s" * 32, prefix="ring"), cast(Any, attempts), ring_secs=0.05)
    token = rings.start("at_0123456789abcdef0123")
    for _ in range(100):
        if attempts.ended:
            break
        await asyncio.sleep(0.02)
    assert attempts.ended == [("at_0123456789abcdef0123", "no-answer")]
    with pytest.raises(RingError):
        rings.answer(token)  # too late
