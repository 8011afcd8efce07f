"""Issue 16: forged and replayed Twilio requests against the real server (``create_app``).

Each attack is placed the way an attacker would, with the phone emulator over real
sockets, against the app ``callagent serve`` runs (uvicorn on a loopback port). Only the
call itself is a stand-in (no models): a tiny pipeline on the real Twilio transport that
hangs the call up over REST when the caller presses 0, so a stream the server wrongly
admits reaches the fake Twilio REST API exactly as a real call's transfer would.

``ATTEMPTS`` counts every forged or replayed request; each test asserts it was refused.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import uvicorn
from loguru import logger
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
from bot.settings import Settings
from simulator.phone import TwilioCallEmulator, new_sid, parse_stream_twiml, place_call
from tests.fakes.twilio import FakeTwilioRest

TOKEN = "e" * 32
ACCOUNT = "AC" + "7" * 32
CALLER = "+15555550142"


class KeypadZeroHangsUp(FrameProcessor):
    """The stand-in call: pressing 0 ends it, which makes the transport act over REST."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputDTMFFrame) and frame.button.value == "0":
            await self.push_frame(EndWorkerFrame(reason="keypad 0"))
            return
        await self.push_frame(frame, direction)


class Server:
    """The real app on a loopback port, its fake REST API, and the calls it admitted."""

    def __init__(self, rest: FakeTwilioRest, settings: Settings, port: int) -> None:
        self.rest = rest
        self.settings = settings
        self.port = port
        self.admitted: list[str] = []
        self.finished: dict[str, asyncio.Event] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/twilio/stream"

    async def run_call(self, transport: BaseTransport, spec: CallSpec, _runtime: Any) -> None:
        sid = spec.provider_call_id or ""
        self.admitted.append(sid)
        done = self.finished.setdefault(sid, asyncio.Event())
        worker = PipelineWorker(
            Pipeline([transport.input(), KeypadZeroHangsUp(), transport.output()]),
            params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000),
            idle_timeout_secs=60,
        )

        @transport.event_handler("on_client_disconnected")
        async def disconnected(_t: object, _ws: object) -> None:
            await worker.cancel()

        runner = WorkerRunner(handle_sigint=False, check_dangling_tasks=False)
        await runner.add_workers(worker)
        try:
            await runner.run()
        finally:
            done.set()

    async def wait_finished(self, call_sid: str) -> None:
        await asyncio.wait_for(self.finished.setdefault(call_sid, asyncio.Event()).wait(), 10)


Serve = Callable[..., Awaitable[Server]]


@pytest.fixture
async def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Serve]:
    """Start the real app with the given settings (``public_url="{base}"`` = its own URL)."""
    from bot.web import app as app_module

    started: list[tuple[uvicorn.Server, asyncio.Task[None], FakeTwilioRest]] = []

    async def start(
        *, host: str = "127.0.0.1", auth_token: str = TOKEN, public_url: str = "", **env: str
    ) -> Server:
        rest = FakeTwilioRest(ACCOUNT, TOKEN)
        await rest.start()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        settings = Settings.load(
            {
                "CALLAGENT_HOST": host,
                "CALLAGENT_PUBLIC_URL": public_url.format(base=f"http://127.0.0.1:{port}"),
                "TWILIO_ACCOUNT_SID": ACCOUNT,
                "TWILIO_AUTH_TOKEN": auth_token,
                "TWILIO_API_BASE_URL": rest.base_url,
                "CALLAGENT_DATA_DIR": str(tmp_path),
                **env,
            }
        )
        server = Server(rest, settings, port)
        monkeypatch.setattr(app_module, "run_call", server.run_call)
        unused = cast(Any, None)  # the stand-in call uses no models
        runtime = Runtime(
            settings, load_agent(settings.agent_file), None, None, unused, unused, None
        )
        app = app_module.create_app(settings, runtime)
        uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        task = asyncio.create_task(uv.serve(sockets=[sock]))
        while not uv.started:
            await asyncio.sleep(0.02)
        started.append((uv, task, rest))
        return server

    yield start
    for uv, task, rest in started:
        uv.should_exit = True
        await asyncio.wait_for(task, 10)
        await rest.stop()


class Attempts:
    """Forged or replayed requests made, and how many the server accepted."""

    made = 0
    accepted = 0


ATTEMPTS = Attempts()


REFUSAL_WAIT_S = 15
"""A refused stream is closed at once; one still open this long was taken. Generous: a
passing test never waits it out, and 3 s left a loaded machine little room (suspected in the
one failure of this file seen, in a loaded run)."""


async def attack_stream(call: TwilioCallEmulator) -> bool:
    """Open a forged/replayed stream and press 0; whether the server kept it open."""
    ATTEMPTS.made += 1
    try:
        await call.connect()
    except Exception:
        return False  # refused at the upgrade
    try:
        await call.wait_closed(timeout=REFUSAL_WAIT_S)
    except Exception:  # still open: the server took the stream
        await call.press("0")
        await asyncio.sleep(0.5)
        await call.hang_up()
        ATTEMPTS.accepted += 1
        return True
    return False


async def attack_webhook(client: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    ATTEMPTS.made += 1
    response = await client.post(url, **kwargs)
    ATTEMPTS.accepted += response.status_code < 400
    return response


def webhook_form(call_sid: str) -> dict[str, str]:
    return {"CallSid": call_sid, "AccountSid": ACCOUNT, "From": CALLER, "To": "+15555550100"}


def replay_of(call: TwilioCallEmulator, **changes: Any) -> TwilioCallEmulator:
    """The same upgrade (URL, signature) and ``start`` as a stream already seen."""
    values: dict[str, Any] = {
        "call_sid": call.call_sid,
        "account_sid": call.account_sid,
        "custom_parameters": call.custom_parameters,
        "auth_token": TOKEN,
        **changes,
    }
    return TwilioCallEmulator(call.ws_url, **values)


# Finding 2: stream signatures can be replayed


async def test_replayed_stream_after_the_call_ended_is_refused(serve: Serve) -> None:
    server = await serve()
    call = await place_call(server.base_url, auth_token=TOKEN, account_sid=ACCOUNT)
    await call.hang_up()
    await server.wait_finished(call.call_sid)

    assert not await attack_stream(replay_of(call))  # same URL, signature and start
    assert not await attack_stream(replay_of(call, call_sid=new_sid("CA"), stream_sid=None))
    assert not await attack_stream(replay_of(call, custom_parameters={}))  # no binding
    assert server.admitted == [call.call_sid]
    assert server.rest.requests == []


async def test_stream_claiming_another_calls_sid_is_refused_and_sends_twilio_nothing(
    serve: Serve,
) -> None:
    server = await serve()
    victim = await place_call(server.base_url, auth_token=TOKEN, account_sid=ACCOUNT)
    attacker = await place_call(server.base_url, auth_token=TOKEN, account_sid=ACCOUNT)
    await attacker.hang_up()
    await server.wait_finished(attacker.call_sid)

    assert not await attack_stream(replay_of(attacker, call_sid=victim.call_sid))
    assert not await attack_stream(replay_of(attacker, call_sid=new_sid("CA")))
    assert not await attack_stream(replay_of(attacker, account_sid=new_sid("AC")))
    tampered = {**attacker.custom_parameters, "From": "+15555550199"}  # someone else's number
    assert not await attack_stream(replay_of(attacker, custom_parameters=tampered))
    await victim.hang_up()
    await server.wait_finished(victim.call_sid)
    assert sorted(server.admitted) == sorted([victim.call_sid, attacker.call_sid])
    assert server.rest.requests == []  # nothing was sent to Twilio about the victim's call


async def test_expired_stream_token_is_refused(serve: Serve) -> None:
    from transports.twilio_binding import STREAM_TOKEN_PARAMETER, StreamTokenSigner

    server = await serve()
    call_sid = new_sid("CA")
    params = {"From": CALLER, "To": "+15555550100", "CallSid": call_sid}
    issued_long_ago = StreamTokenSigner.for_auth_token(
        TOKEN, ttl_s=60, clock=lambda: time.time() - 3600
    )
    token = issued_long_ago.issue(call_sid, ACCOUNT, params)
    call = TwilioCallEmulator(
        server.stream_url,
        call_sid=call_sid,
        account_sid=ACCOUNT,
        custom_parameters={**params, STREAM_TOKEN_PARAMETER: token},
        auth_token=TOKEN,
    )
    assert not await attack_stream(call)
    assert server.admitted == []


async def test_a_live_call_gets_no_second_stream_nor_a_second_webhook(serve: Serve) -> None:
    server = await serve()
    call = await place_call(server.base_url, auth_token=TOKEN, account_sid=ACCOUNT)
    assert not await attack_stream(replay_of(call))  # the same TwiML, a second time
    url = f"{server.base_url}/twilio/voice"
    form = webhook_form(call.call_sid)
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    async with httpx.AsyncClient() as client:
        replayed = await attack_webhook(
            client, url, data=form, headers={"X-Twilio-Signature": signature}
        )
    assert replayed.status_code == 409 and "CallSid" in replayed.text
    assert not call.closed  # the real call goes on
    await call.hang_up()
    await server.wait_finished(call.call_sid)
    assert server.admitted == [call.call_sid]


async def test_webhook_replayed_after_the_call_ended_yields_no_stream(serve: Serve) -> None:
    server = await serve()
    call = await place_call(server.base_url, auth_token=TOKEN, account_sid=ACCOUNT)
    await call.hang_up()
    await server.wait_finished(call.call_sid)
    url = f"{server.base_url}/twilio/voice"
    form = webhook_form(call.call_sid)
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    async with httpx.AsyncClient() as client:
        replayed = await attack_webhook(
            client, url, data=form, headers={"X-Twilio-Signature": signature}
        )
    assert replayed.status_code == 409
    assert server.admitted == [call.call_sid]


# Finding 3: no auth token / no public URL on a public address


async def test_public_address_without_auth_token_closes_the_twilio_routes(serve: Serve) -> None:
    server = await serve(host="0.0.0.0", auth_token="", public_url="{base}")
    async with httpx.AsyncClient() as client:
        voice = await attack_webhook(
            client, f"{server.base_url}/twilio/voice", data=webhook_form(new_sid("CA"))
        )
        hold = await client.post(f"{server.base_url}/twilio/hold")
    assert voice.status_code == 403 and "TWILIO_AUTH_TOKEN" in voice.text
    assert "CALLAGENT_TWILIO_INSECURE_ACCEPT_UNSIGNED" in voice.text
    assert hold.status_code == 403
    assert not await attack_stream(TwilioCallEmulator(server.stream_url))
    assert server.admitted == []


async def test_the_insecure_setting_accepts_unsigned_calls_and_says_so(serve: Serve) -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING", format="{message}")
    try:
        server = await serve(
            host="0.0.0.0",
            auth_token="",
            public_url="{base}",
            CALLAGENT_TWILIO_INSECURE_ACCEPT_UNSIGNED="true",
        )
    finally:
        logger.remove(sink)
    assert any("CALLAGENT_TWILIO_INSECURE_ACCEPT_UNSIGNED" in line for line in lines)
    call = await place_call(server.base_url, account_sid=ACCOUNT)  # unsigned, like the attacker
    await call.hang_up()
    await server.wait_finished(call.call_sid)
    assert server.admitted == [call.call_sid]


async def test_public_address_without_public_url_closes_the_twilio_routes(serve: Serve) -> None:
    server = await serve(host="0.0.0.0")
    url = f"{server.base_url}/twilio/voice"  # what the Host header says
    form = webhook_form(new_sid("CA"))
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    async with httpx.AsyncClient() as client:
        voice = await client.post(url, data=form, headers={"X-Twilio-Signature": signature})
    assert voice.status_code == 403 and "CALLAGENT_PUBLIC_URL" in voice.text
    assert not await attack_stream(TwilioCallEmulator(server.stream_url, auth_token=TOKEN))


async def test_host_header_cannot_change_the_stream_url(serve: Serve) -> None:
    server = await serve(host="0.0.0.0", public_url="https://agent.example.com")
    url = "https://agent.example.com/twilio/voice"
    form = webhook_form(new_sid("CA"))
    headers = {
        "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, form),
        "Host": "evil.example.net",
        "X-Forwarded-Host": "evil.example.net",
    }
    async with httpx.AsyncClient() as client:
        response = await attack_webhook(
            client, f"{server.base_url}/twilio/voice", data=form, headers=headers
        )
    # signed for the public URL, so it is Twilio's request: only the stream URL matters here
    ATTEMPTS.accepted -= response.status_code == 200
    assert response.status_code == 200
    assert parse_stream_twiml(response.text).stream_url == "wss://agent.example.com/twilio/stream"


# What keeps working


async def test_loopback_without_auth_token_streams_straight_in(serve: Serve) -> None:
    server = await serve(auth_token="")
    call = TwilioCallEmulator(server.stream_url)  # no webhook, no signature: tests, benches
    await call.connect()
    await call.press("1")
    await call.hang_up()
    await server.wait_finished(call.call_sid)
    assert server.admitted == [call.call_sid]
    assert not await attack_stream(TwilioCallEmulator(server.stream_url, call_sid=call.call_sid))


async def test_the_simulator_places_calls_through_the_binding(serve: Serve) -> None:
    from transports.twilio_binding import STREAM_TOKEN_PARAMETER

    server = await serve(public_url="{base}")
    call = await place_call(server.base_url, auth_token=TOKEN, account_sid=ACCOUNT)
    assert STREAM_TOKEN_PARAMETER in call.custom_parameters
    await call.press("0")  # the stand-in hangs up over REST: the call's own CallSid
    await call.wait_closed(timeout=10)
    await server.wait_finished(call.call_sid)
    assert [r.call_sid for r in server.rest.requests] == [call.call_sid]


def test_no_forged_or_replayed_request_was_accepted() -> None:
    """Runs after the attacks above: the attack table's count (target 0)."""
    if ATTEMPTS.made == 0:
        pytest.skip("counts the attacks of this module's other tests")
    assert ATTEMPTS.made >= 15
    assert ATTEMPTS.accepted == 0


# The pieces


def test_stream_tokens_bind_the_call_its_parameters_and_expire() -> None:
    from transports.twilio_binding import StreamBindingError, StreamTokenSigner

    now = [1_000_000.0]
    signer = StreamTokenSigner.for_auth_token(TOKEN, ttl_s=60, clock=lambda: now[0])
    call, params = new_sid("CA"), {"From": CALLER, "To": "+15555550100"}
    token = signer.issue(call, ACCOUNT, params)
    signer.verify(token, call, ACCOUNT, params)
    for args in (
        (token, new_sid("CA"), ACCOUNT, params),
        (token, call, new_sid("AC"), params),
        (token, call, ACCOUNT, {**params, "From": "+15555550199"}),
        (token, call, ACCOUNT, {}),
        ("9999999999." + token.split(".")[1], call, ACCOUNT, params),  # a later expiry
        ("garbage", call, ACCOUNT, params),
    ):
        with pytest.raises(StreamBindingError):
            signer.verify(*args)
    other_account = StreamTokenSigner.for_auth_token("f" * 32, clock=lambda: now[0])
    with pytest.raises(StreamBindingError, match="does not match"):
        other_account.verify(token, call, ACCOUNT, params)
    now[0] += 61
    with pytest.raises(StreamBindingError, match="expired"):
        signer.verify(token, call, ACCOUNT, params)


async def test_the_ledger_admits_a_call_once_and_forgets_old_ones() -> None:
    from integrations.shared_state.memory import MemorySharedState
    from transports.twilio_binding import SharedCallSidLedger

    now = [0.0]
    ledger = SharedCallSidLedger(MemorySharedState(clock=lambda: now[0]), retain_finished_s=100)
    assert await ledger.claim("CA1")
    assert not await ledger.claim("CA1")  # live
    now[0] = 50
    await ledger.finish("CA1")
    assert not await ledger.claim("CA1") and await ledger.is_known("CA1")  # finished
    now[0] = 151
    assert not await ledger.is_known("CA1")  # expired: memory stays bounded
    assert await ledger.claim("CA1")
