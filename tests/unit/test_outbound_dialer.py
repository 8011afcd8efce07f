"""Issue 17, one outbound call: against the real server (``create_app`` on a loopback port).

Twilio's REST API is the simulator's fake (:class:`simulator.fake_twilio.FakeTwilioRest`):
its callees answer, and its webhooks and callbacks are signed as Twilio signs them; the
call's media stream is the phone emulator over the real Media Streams protocol. Tests that
post Twilio's webhooks themselves (forged ones, repeated ones) hold the fake's calls in
``queued``. Only the call's pipeline is a stand-in (no models): the real transport, the
outbound observers the server adds, and a keypad that stands for the dialogue
(:mod:`tests.support.outbound_server`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from simulator.outbound import call_flow
from simulator.outbound.callbacks import CallbackDelivery
from simulator.outbound.callee import Busy, Failed, NoAnswer, Press
from simulator.outbound.dialed_call import DialedCall
from simulator.phone import parse_stream_twiml
from tests.support.outbound_server import (
    ACCOUNT,
    CALLEE,
    OPERATOR,
    OUR_NUMBER,
    KeypadCallee,
    OutboundServer,
    OutboundServers,
)

Serve = Callable[..., Awaitable[OutboundServer]]


@pytest.fixture
async def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Serve]:
    servers = OutboundServers(tmp_path, monkeypatch)

    async def start(**env: str) -> OutboundServer:
        server = await servers.start(**env)
        server.rest.dialer.default = NoAnswer()  # unless a test registers who answers
        return server

    yield start
    await servers.close()


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake keeps its calls ``queued`` (no callbacks): the test posts Twilio's webhooks."""
    monkeypatch.setattr(call_flow, "QUEUE_S", 3600.0)


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


async def delivery(
    call: DialedCall, kind: str, status: str | None = None, timeout: float = 20.0
) -> CallbackDelivery:
    """The fake's first webhook of ``kind`` for the call (a status: with that CallStatus)."""
    async with asyncio.timeout(timeout):
        while True:
            for d in call.deliveries:
                if d.kind == kind and (status is None or d.params.get("CallStatus") == status):
                    if d.status is not None or d.error is not None:  # answered
                        return d
            await asyncio.sleep(0.02)


def _json(d: CallbackDelivery) -> Any:
    """A webhook's JSON answer."""
    return json.loads(d.body)


async def test_placed_call_is_created_with_signed_answer_status_and_amd_urls(
    serve: Serve, held: None
) -> None:
    server = await serve()
    response = await server.place(agent="", variables={})
    assert response.status_code == 201, response.text
    placed = response.json()
    assert placed["provider_call_id"] == server.created()[0]
    assert placed["status"] == "dialing" and placed["ring_url"] is None
    form = server.creates()[0]
    assert form["To"] == CALLEE and form["From"] == OUR_NUMBER
    url = urlsplit(form["Url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{server.base_url}/twilio/voice"
    token = parse_qs(url.query)["attempt"][0]
    assert token.startswith(placed["attempt_id"] + ".")
    assert form["StatusCallback"] == f"{server.base_url}/twilio/call-status?attempt={token}"
    dialed = server.dialed(placed["provider_call_id"])
    assert dialed.status_events == ("initiated", "ringing", "answered", "completed")
    assert form["MachineDetection"] == "DetectMessageEnd"
    assert form["AsyncAmd"] == "true"
    assert form["AsyncAmdStatusCallback"] == f"{server.base_url}/twilio/amd-status?attempt={token}"
    attempt = await server.attempt(placed["attempt_id"])
    assert attempt["provider_call_id"] == placed["provider_call_id"]
    assert attempt["state"] == "dialing" and attempt["to"] == CALLEE


async def test_a_full_outbound_call_over_media_streams_records_its_attempt(serve: Serve) -> None:
    server = await serve()
    go = asyncio.Event()  # the callee keys once the AMD callback was answered
    keys = (Press("1"), Press("9"), Press("0"))  # confirmed, "stop calling me", hang up
    server.rest.dialer.register(CALLEE, KeypadCallee(lines=keys, amd_after_s=1.8, go=go))
    placed = (await server.place()).json()
    call_sid = placed["provider_call_id"]
    call = server.dialed(call_sid)

    # ringing, then answered: the signed webhook answers TwiML carrying the attempt
    ringing = await delivery(call, "status", "ringing")
    assert ringing.status == 200 and _json(ringing)["state"] == "ringing"
    answer = await delivery(call, "answer")
    assert answer.status == 200, answer.body
    stream = parse_stream_twiml(call.twiml)
    assert stream.parameters["callagentAttempt"] == placed["attempt_id"]
    assert "callagentStreamToken" in stream.parameters  # the attempt rides under the binding

    for _ in range(250):
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

    amd = await delivery(call, "amd")
    assert amd.params["AnsweredBy"] == "human" and amd.params["MachineDetectionDuration"] == "1800"
    assert amd.status == 200 and _json(amd) == {"verdict": "human"}
    go.set()
    await server.rest.dialer.wait_for_end(call_sid, timeout=20)
    assert server.finished.is_set()
    assert call.log.said == ["press:1", "press:9", "press:0"]
    assert call.log.hung_up_by == "agent"

    completed = await delivery(call, "status", "completed")
    assert completed.status == 200 and _json(completed)["state"] == "ended"
    # Twilio may repeat a callback: the attempt ends once
    again = await server.rest.dialer.sender.send("status", completed.url, completed.params)
    assert again.status == 200 and _json(again)["state"] == "ended"
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
    again_placed = await server.place()
    assert again_placed.status_code == 409 and "do-not-call" in again_placed.json()["detail"]
    assert len(server.creates()) == 1


async def test_a_callee_answering_while_the_server_drains_gets_the_call_not_a_reject(
    serve: Serve,
) -> None:
    server = await serve()
    server.rest.dialer.register(CALLEE, KeypadCallee(lines=(Press("1"), Press("0"))))
    placed = (await server.place()).json()
    call = server.dialed(placed["provider_call_id"])
    server.app.state.admission.stop_admitting()  # SIGTERM after the dial, before the answer

    answer = await delivery(call, "answer")
    assert answer.status == 200 and "<Reject" not in (call.twiml or "")
    assert parse_stream_twiml(call.twiml).parameters["callagentAttempt"] == placed["attempt_id"]
    await server.rest.dialer.wait_for_end(placed["provider_call_id"], timeout=20)
    assert server.specs and server.specs[0].outbound is not None
    assert call.log.said == ["press:1", "press:0"]

    # a new inbound call in the drain still hears what the agent file says
    inbound = await server.post_signed(
        f"{server.base_url}/twilio/voice",
        {"CallSid": "CA" + "1" * 32, "AccountSid": "AC" + "2" * 32, "Direction": "inbound"},
    )
    assert inbound.status_code == 200 and "<Stream" not in inbound.text


async def test_forged_unsigned_or_mismatched_outbound_webhooks_are_refused(
    serve: Serve, held: None
) -> None:
    server = await serve()
    placed = (await server.place()).json()
    other = (await server.place(to="+15555550124")).json()
    call_sid = placed["provider_call_id"]
    answer_url = server.creates()[0]["Url"]
    voice = f"{server.base_url}/twilio/voice"

    unsigned = await server.client.post(answer_url, data=webhook_form(call_sid))
    assert unsigned.status_code == 403
    no_token = await server.post_signed(voice, webhook_form(call_sid))
    assert no_token.status_code == 403
    forged = answer_url.rsplit(".", 1)[0] + ".AAAAforged"
    assert (await server.post_signed(forged, webhook_form(call_sid))).status_code == 403
    # a valid token of another attempt, for this call
    other_url = server.creates()[1]["Url"]
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


async def _cancel(server: OutboundServer, call_sid: str) -> None:
    """Cancel the ringing call over the fake's REST API (as an operator's console does)."""
    url = f"{server.rest.base_url}/2010-04-01/Accounts/{ACCOUNT}/Calls/{call_sid}.json"
    async with httpx.AsyncClient(auth=(ACCOUNT, server.rest.auth_token)) as client:
        await server.rest.dialer.wait_for_call(to=CALLEE)
        while server.dialed(call_sid).status != "ringing":
            await asyncio.sleep(0.02)
        response = await client.post(url, data={"Status": "canceled"})
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("status", "disposition"),
    [("no-answer", "no-answer"), ("busy", "busy"), ("failed", "failed"), ("canceled", "no-answer")],
)
async def test_final_status_callbacks_end_the_attempt_once(
    serve: Serve, status: str, disposition: str
) -> None:
    server = await serve(CALLAGENT_OUTBOUND_RING_SECS="5")
    callees = {"no-answer": NoAnswer(), "busy": Busy(), "failed": Failed(code=None)}
    server.rest.dialer.register(CALLEE, callees.get(status, NoAnswer()))
    placed = (await server.place()).json()
    call_sid = placed["provider_call_id"]
    if status == "canceled":
        await _cancel(server, call_sid)
    call = await server.rest.dialer.wait_for_end(call_sid, timeout=20)
    final = await delivery(call, "status", status)
    assert final.status == 200
    for _ in range(2):  # Twilio may repeat a callback
        again = await server.rest.dialer.sender.send("status", final.url, final.params)
        assert again.status == 200
    attempt = await server.attempt(placed["attempt_id"])
    assert attempt["state"] == "ended" and attempt["disposition"] == disposition
    assert len(server.ended.attempts) == 1
    # an ended attempt's answer URL lets no call in
    late = await server.post_signed(server.creates()[0]["Url"], webhook_form(call_sid))
    assert late.status_code == 403


async def test_rest_error_is_recorded_with_its_code_and_not_retried(serve: Serve) -> None:
    server = await serve()
    server.rest.dialer.register(CALLEE, Failed(code=21211))  # invalid 'To' number
    response = await server.place()
    assert response.status_code == 502
    body = response.json()
    assert body["error_code"] == 21211 and body["disposition"] == "failed"
    assert len(server.creates()) == 1  # not retried
    attempt = await server.attempt(body["attempt_id"])
    assert attempt["state"] == "ended" and attempt["error_code"] == 21211
    assert [a.id for a in server.ended.attempts] == [body["attempt_id"]]


async def test_twilio_503_is_retried(serve: Serve, held: None) -> None:
    server = await serve()
    server.rest.fail_next(503)
    response = await server.place()
    assert response.status_code == 201
    assert len(server.creates()) == 2


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
    assert server.creates() == []


async def test_do_not_call_number_is_refused_and_never_dialled(serve: Serve) -> None:
    server = await serve()
    store = server.runtime.records
    assert store is not None
    from integrations.outbound.store import OutboundStore

    OutboundStore(store.store.engine).dnc_add(CALLEE, "api")
    response = await server.place()
    assert response.status_code == 409
    assert server.creates() == []


async def test_over_the_call_cap_is_503(serve: Serve, held: None) -> None:
    server = await serve(CALLAGENT_MAX_CALLS="1")
    slot = server.app.state.admission.acquire("webrtc", "203.0.113.9")  # the only slot
    try:
        response = await server.place()
        assert response.status_code == 503 and "Retry-After" in response.headers
    finally:
        slot.release()
    assert server.creates() == []
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
    assert server.creates() == []


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
    server.rest.dialer.register(CALLEE, Busy())  # the fake's signed callback says busy
    monkeypatch.setenv("CALLAGENT_OPERATOR_TOKEN", OPERATOR)
    argv = ["call", CALLEE, "--var", "first_name=Maria", "--server", server.base_url, "--wait"]
    command = asyncio.create_task(asyncio.to_thread(main, argv))
    call = await server.rest.dialer.wait_for_call(to=CALLEE)
    await server.rest.dialer.wait_for_end(call.sid, timeout=20)
    assert call.events_sent()[-1] == "busy"
    assert await asyncio.wait_for(command, 20) == 0
    out = capsys.readouterr().out
    assert "attempt at_" in out and "ended: busy" in out


async def test_an_unanswered_browser_ring_ends_as_no_answer() -> None:
    from bot.outbound.ring import RingError, Rings, RingTokens
    from integrations.shared_state.memory import MemorySharedState

    class Finished:
        def __init__(self) -> None:
            self.ended: list[tuple[str, str]] = []

        async def finish(self, attempt_id: str, fallback: str) -> None:
            self.ended.append((attempt_id, fallback))

    attempts = Finished()
    shared = MemorySharedState()
    rings = Rings(
        RingTokens("s" * 32, shared, ttl_s=5), cast(Any, attempts), ring_secs=0.05, shared=shared
    )
    token = await rings.start("at_0123456789abcdef0123")
    for _ in range(100):
        if attempts.ended:
            break
        await asyncio.sleep(0.02)
    assert attempts.ended == [("at_0123456789abcdef0123", "no-answer")]
    with pytest.raises(RingError):
        await rings.answer(token)  # too late
