"""Who may start a call, and how many: attacks on the real server (``create_app``) first.

Issue 16's findings: ``POST /api/offer`` started a call for anyone (no credential, no origin
or content-type check, no cap, every offer a call living 60 s and leaving a record), and any
number of ``/twilio/stream`` sockets were accepted. Each test below is one of those attacks
against the app the server runs, then what a legitimate client still gets.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from tests.support.webrtc import browser_offer_sdp

TOKEN = "operator-token-for-tests-0123"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
PUBLIC = "https://agent.example.com"
LOCAL = "http://127.0.0.1:7860"


@pytest.fixture(scope="module")
def offer_sdp() -> str:
    """A real browser-like SDP offer (aiortc's), from a peer that is gone at once."""
    return asyncio.run(browser_offer_sdp())


def make_app(data_dir: Path, agent: Any, **env: str) -> FastAPI:
    """The server's app with a fake classifier and no speech models (no call gets that far)."""
    from bot.call.runtime import Runtime
    from bot.settings import Settings
    from bot.web.app import create_app
    from integrations.nlu.entities import EntityExtractor
    from tests.fakes.classifier import ScriptedClassifier

    settings = Settings.load({"CALLAGENT_DATA_DIR": str(data_dir), "CALLAGENT_CRM": "none", **env})
    runtime = Runtime(settings, agent, None, None, ScriptedClassifier(), EntityExtractor(), None)
    return create_app(settings, runtime)


@pytest.fixture
def public_server(data_dir: Path, agent: Any) -> Iterator[TestClient]:
    """A server others can reach (0.0.0.0 behind https://agent.example.com)."""
    app = make_app(
        data_dir,
        agent,
        CALLAGENT_HOST="0.0.0.0",
        CALLAGENT_PUBLIC_URL=PUBLIC,
        CALLAGENT_OPERATOR_TOKEN=TOKEN,
        CALLAGENT_CALL_RATE_PER_MINUTE="0",
    )
    with TestClient(app, base_url=PUBLIC, client=("203.0.113.7", 50000)) as client:
        yield client


def offer(client: TestClient, sdp: str, *, origin: str | None = PUBLIC, **extra: Any):
    headers = {"Origin": origin} if origin else {}
    headers.update(extra.pop("headers", {}))
    return client.post("/api/offer", json={"sdp": sdp, "type": "offer", **extra}, headers=headers)


def slots(client: TestClient) -> int:
    return client.app.state.admission.in_use  # type: ignore[attr-defined]


def refusals(client: TestClient) -> dict[str, dict[str, int]]:
    return client.app.state.admission.stats()["refused"]  # type: ignore[attr-defined]


def stream_close_code(client: TestClient) -> int:
    """Open ``/twilio/stream`` and return the close code the server ends it with (or the HTTP
    status it refused the upgrade with, e.g. 403 for a bad signature)."""
    try:
        with client.websocket_connect("/twilio/stream") as ws:
            ws.receive_text()
    except WebSocketDenialResponse as e:  # a WebSocketDisconnect too: catch it first
        return e.status_code
    except WebSocketDisconnect as e:
        return e.code
    raise AssertionError("the stream was not closed")


def test_cross_origin_text_plain_offer_is_refused(data_dir, agent, offer_sdp) -> None:
    # a page on another site can post text/plain to any server without asking first
    app = make_app(data_dir, agent)  # loopback: the README's set-up, no credential needed
    with TestClient(app, base_url=LOCAL, client=("127.0.0.1", 50000)) as client:
        body = json.dumps({"sdp": offer_sdp, "type": "offer"})
        plain = client.post(
            "/api/offer",
            content=body,
            headers={"Content-Type": "text/plain", "Origin": "https://evil.example"},
        )
        assert plain.status_code == 415
        assert "application/json" in plain.json()["detail"]
        # the same offer as JSON from the other site (a CORS preflight would stop a browser;
        # a script can send it anyway)
        cross = offer(client, offer_sdp, origin="https://evil.example")
        assert cross.status_code == 403
        assert "CALLAGENT_ALLOWED_ORIGINS" in cross.json()["detail"]
        assert slots(client) == 0
        assert refusals(client)["webrtc"] == {"origin": 1}
        # the page itself still works on loopback with no credential
        assert offer(client, offer_sdp, origin=LOCAL).status_code == 200


def test_allowed_origins_setting_lets_another_page_post(data_dir, agent, offer_sdp) -> None:
    app = make_app(data_dir, agent, CALLAGENT_ALLOWED_ORIGINS="https://www.example.com")
    with TestClient(app, base_url=LOCAL, client=("127.0.0.1", 50000)) as client:
        assert offer(client, offer_sdp, origin="https://www.example.com").status_code == 200
        assert offer(client, offer_sdp, origin="https://www.example.org").status_code == 403


def test_off_loopback_offer_without_credentials_starts_nothing(public_server, offer_sdp) -> None:
    attempts = [
        offer(public_server, offer_sdp),
        offer(public_server, offer_sdp, origin=None),
        offer(public_server, offer_sdp, call_token="v1.9999999999.abc.def"),
        offer(public_server, offer_sdp, headers={"Authorization": "Bearer wrong-token-0123456"}),
        offer(public_server, offer_sdp, headers={"Cookie": "callagent_operator=forged"}),
    ]
    attempts += [offer(public_server, offer_sdp) for _ in range(19)]  # 24 a second, as tested
    assert {r.status_code for r in attempts} == {401}
    assert "call_token" in attempts[0].json()["detail"]
    assert slots(public_server) == 0
    assert not public_server.app.state.calls.active  # type: ignore[attr-defined]
    assert refusals(public_server)["webrtc"] == {"credentials": 24}


def test_off_loopback_without_an_operator_token_says_what_to_set(
    data_dir, agent, offer_sdp
) -> None:
    app = make_app(data_dir, agent, CALLAGENT_HOST="0.0.0.0", CALLAGENT_PUBLIC_URL=PUBLIC)
    with TestClient(app, base_url=PUBLIC) as client:
        refused = offer(client, offer_sdp)
        assert refused.status_code == 403
        assert "CALLAGENT_OPERATOR_TOKEN" in refused.json()["detail"]
        assert client.post("/api/call-tokens", headers=BEARER).status_code == 403


def test_loopback_bound_server_still_guards_forwarded_and_rebound_requests(
    data_dir, agent, offer_sdp
) -> None:
    # bound to 127.0.0.1 but reached through a proxy, or through a DNS name rebound to it
    app = make_app(data_dir, agent, CALLAGENT_OPERATOR_TOKEN=TOKEN)
    with TestClient(app, base_url=LOCAL, client=("127.0.0.1", 50000)) as client:
        forwarded = offer(client, offer_sdp, origin=LOCAL, headers={"X-Forwarded-For": "1.2.3.4"})
        assert forwarded.status_code == 401
    with TestClient(app, base_url="http://rebound.example:7860", client=("127.0.0.1", 1)) as c:
        assert offer(c, offer_sdp, origin="http://rebound.example:7860").status_code == 401
    with TestClient(app, base_url=LOCAL, client=("192.0.2.9", 50000)) as client:
        assert offer(client, offer_sdp, origin=LOCAL).status_code == 401


def test_operator_bearer_or_a_call_token_is_answered(public_server, offer_sdp) -> None:
    by_operator = offer(public_server, offer_sdp, headers=BEARER)
    assert by_operator.status_code == 200 and by_operator.json()["sdp"].startswith("v=0")

    assert public_server.post("/api/call-tokens").status_code == 401  # minting needs the operator
    minted = public_server.post("/api/call-tokens", headers=BEARER).json()
    assert minted["expires_in"] == 120 and minted["expires_at"].endswith("+00:00")
    by_token = offer(public_server, offer_sdp, call_token=minted["token"])
    assert by_token.status_code == 200 and by_token.json()["pc_id"]
    assert slots(public_server) == 2  # two offers wait for their peers, each holding a slot


def test_reused_expired_or_forged_call_tokens_are_refused(public_server, offer_sdp) -> None:
    from bot.web.call_access import CallTokens

    token = public_server.post("/api/call-tokens", headers=BEARER).json()["token"]
    assert offer(public_server, offer_sdp, call_token=token).status_code == 200
    reused = offer(public_server, offer_sdp, call_token=token)
    assert reused.status_code == 401 and "already used" in reused.json()["detail"]

    # a token minted (with the server's key) two hours ago
    old = CallTokens(TOKEN, 120, clock=lambda: time.time() - 7200).mint().token
    expired = offer(public_server, offer_sdp, call_token=old)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]

    version, nonce, caller_tag, expires_at, _mac = token.split(".")
    forged = f"{version}.{nonce}.{caller_tag}.{int(expires_at) + 3600}.{'0' * 43}"
    assert offer(public_server, offer_sdp, call_token=forged).status_code == 401
    other_key = CallTokens("another-operator-token-0123", 120).mint().token
    assert offer(public_server, offer_sdp, call_token=other_key).status_code == 401
    assert slots(public_server) == 1


@pytest.fixture
def started_callers(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The caller of each call the server starts (the pipeline, i.e. the models, replaced)."""
    import bot.web.app as app_module

    callers: list[str | None] = []

    async def record(_transport: Any, spec: Any, _runtime: Any) -> None:
        callers.append(spec.caller)

    monkeypatch.setattr(app_module, "run_call", record)
    return callers


def call(
    client: TestClient,
    started: list[str | None],
    *,
    caller: str | None = None,
    origin: str = PUBLIC,
    path: str = "/api/offer",
    **extra: Any,
):
    """Offer a real (aiortc) peer as ``caller``; if answered, connect it until its call starts."""

    headers = {"Origin": origin, **extra.pop("headers", {})}

    async def run():
        from aiortc import RTCPeerConnection, RTCSessionDescription

        pc = RTCPeerConnection()
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        body = {"sdp": pc.localDescription.sdp, "type": "offer", **extra}
        if caller is not None:
            body["request_data"] = {"caller": caller}
        answer = client.post(path, json=body, headers=headers)
        if answer.status_code == 200:
            before = len(started)
            await pc.setRemoteDescription(RTCSessionDescription(answer.json()["sdp"], "answer"))
            for _ in range(200):  # until the server starts the call (or 20 s)
                if len(started) > before or pc.connectionState == "failed":
                    break
                await asyncio.sleep(0.1)
        await pc.close()
        return answer

    return asyncio.run(run())


def mint(client: TestClient, **body: Any) -> str:
    minted = client.post("/api/call-tokens", headers=BEARER, json=body or None)
    assert minted.status_code == 200, minted.text
    return minted.json()["token"]


def test_a_call_token_for_one_caller_starts_no_call_as_another(
    public_server, started_callers
) -> None:
    # the page holding a token says which customer it is: the agent greets that customer and
    # reads their appointments, so a token for A must not start a call as B
    token = mint(public_server, caller="crm-A")
    as_b = call(public_server, started_callers, caller="crm-B", call_token=token)
    assert as_b.status_code == 403 and "another caller" in as_b.json()["detail"]
    by_query = call(
        public_server, started_callers, path="/api/offer?caller=crm-B", call_token=token
    )
    assert by_query.status_code == 403
    assert call(public_server, started_callers, call_token=token).status_code == 403  # no caller
    # nor does a token for A with the caller tag of a token minted for no caller
    version, nonce, _tag, signed = token.split(".", 3)
    no_caller_tag = mint(public_server).split(".")[2]
    swapped = f"{version}.{nonce}.{no_caller_tag}.{signed}"
    assert call(public_server, started_callers, call_token=swapped).status_code == 401
    assert started_callers == [] and slots(public_server) == 0

    as_a = call(public_server, started_callers, caller="crm-A", call_token=token)
    assert as_a.status_code == 200
    assert started_callers == ["crm-A"]


def test_a_call_token_minted_without_a_caller_takes_none(public_server, started_callers) -> None:
    token = mint(public_server)
    with_caller = call(public_server, started_callers, caller="crm-A", call_token=token)
    assert with_caller.status_code == 403 and started_callers == []
    assert call(public_server, started_callers, call_token=token).status_code == 200
    assert started_callers == [None]


def test_the_operator_and_loopback_still_choose_the_caller(
    public_server, started_callers, data_dir, agent
) -> None:
    by_operator = call(public_server, started_callers, caller="crm-A", headers=BEARER)
    assert by_operator.status_code == 200
    with TestClient(make_app(data_dir, agent), base_url=LOCAL, client=("127.0.0.1", 50000)) as c:
        assert call(c, started_callers, caller="crm-B", origin=LOCAL).status_code == 200
    assert started_callers == ["crm-A", "crm-B"]


def test_minting_for_a_caller_checks_the_body(public_server) -> None:
    for body in (b"[1]", b"not json", b'{"caller": 7}', json.dumps({"caller": "x" * 300}).encode()):
        bad = public_server.post(
            "/api/call-tokens",
            content=body,
            headers={**BEARER, "Content-Type": "application/json"},
        )
        assert bad.status_code == 400 and "caller" in bad.json()["detail"]


def test_repeated_offers_beyond_the_rate_get_429(data_dir, agent, offer_sdp) -> None:
    app = make_app(
        data_dir, agent, CALLAGENT_CALL_RATE_BURST="3", CALLAGENT_CALL_RATE_PER_MINUTE="6"
    )
    with TestClient(app, base_url=LOCAL, client=("127.0.0.1", 50000)) as client:
        answers = [offer(client, offer_sdp, origin=LOCAL) for _ in range(24)]
        assert [r.status_code for r in answers] == [200] * 3 + [429] * 21
        assert int(answers[-1].headers["Retry-After"]) >= 1
        assert answers[-1].headers["X-Content-Type-Options"] == "nosniff"  # security headers
        assert "CALLAGENT_CALL_RATE_PER_MINUTE" in answers[-1].json()["detail"]
        assert refusals(client)["webrtc"] == {"rate": 21}
        assert slots(client) == 3
    # another client has its own bucket
    with TestClient(app, base_url=LOCAL, client=("127.0.0.2", 50000)) as client:
        assert offer(client, offer_sdp, origin=LOCAL).status_code == 200


def test_twilio_routes_are_rate_limited_before_anything_else(data_dir, agent) -> None:
    app = make_app(
        data_dir,
        agent,
        CALLAGENT_CALL_RATE_BURST="2",
        TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        TWILIO_AUTH_TOKEN="twilio-auth-token-for-tests",
    )
    with TestClient(app, base_url=LOCAL) as client:
        voice = [client.post("/twilio/voice", data={"CallSid": "CA1"}) for _ in range(3)]
        assert [r.status_code for r in voice] == [403, 403, 429]  # unsigned, then over the rate
        codes = [stream_close_code(client) for _ in range(3)]
        assert codes[2] == 1013 and 1013 not in codes[:2]
        assert refusals(client) == {"twilio-stream": {"rate": 1}, "twilio-voice": {"rate": 1}}
        assert slots(client) == 0  # the refused and the closed streams hold nothing


def test_calls_beyond_the_cap_get_503_and_1013(data_dir, agent, offer_sdp) -> None:
    app = make_app(
        data_dir,
        agent,
        CALLAGENT_MAX_CALLS="2",
        CALLAGENT_CALL_RATE_PER_MINUTE="0",
        CALLAGENT_TRANSPORT="daily",
        DAILY_ROOM_URL="https://example.daily.co/room",
    )
    with TestClient(app, base_url=LOCAL, client=("127.0.0.1", 50000)) as client:
        assert [offer(client, offer_sdp, origin=LOCAL).status_code for _ in range(2)] == [200] * 2
        over = offer(client, offer_sdp, origin=LOCAL)
        assert over.status_code == 503 and int(over.headers["Retry-After"]) >= 1
        assert "CALLAGENT_MAX_CALLS" in over.json()["detail"]
        assert client.post("/api/rooms").status_code == 503
        # a phone call is answered as the agent file says (the reference agent: busy)
        voice = client.post("/twilio/voice", data={"CallSid": "CA1"})
        assert voice.status_code == 200 and '<Reject reason="busy" />' in voice.text
        assert stream_close_code(client) == 1013
        assert refusals(client) == {
            "rooms": {"capacity": 1},
            "twilio-stream": {"capacity": 1},
            "twilio-voice": {"capacity": 1},
            "webrtc": {"capacity": 1},
        }
        assert client.get("/api/diagnostics").status_code in (401, 403)  # the operator's


def test_an_offer_whose_peer_never_connects_frees_its_slot_and_records_nothing(
    data_dir, agent, offer_sdp
) -> None:
    app = make_app(
        data_dir,
        agent,
        CALLAGENT_MAX_CALLS="1",
        CALLAGENT_WEBRTC_CONNECT_TIMEOUT_SECS="0.3",
        CALLAGENT_OPERATOR_TOKEN=TOKEN,
    )
    with TestClient(app, base_url=LOCAL, client=("127.0.0.1", 50000)) as client:
        assert offer(client, offer_sdp, origin=LOCAL).status_code == 200
        assert offer(client, offer_sdp, origin=LOCAL).status_code == 503  # its slot is held
        deadline = time.monotonic() + 20
        while slots(client) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slots(client) == 0
        assert not client.app.state.calls.active  # type: ignore[attr-defined]
        assert offer(client, offer_sdp, origin=LOCAL).status_code == 200  # the slot is back
        stats = client.get("/api/diagnostics", headers=BEARER).json()["admission"]
        assert stats["max_calls"] == 1
    store = app.state.runtime.records.store
    assert store.count_calls() == 0  # no "abandoned" record for offers nobody followed up


def test_client_address_behind_a_trusted_proxy_only() -> None:
    from starlette.requests import HTTPConnection

    from bot.client_address import ClientAddresses

    def conn(peer: str, forwarded: str | None) -> HTTPConnection:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        return HTTPConnection({"type": "http", "client": (peer, 1), "headers": headers})

    untrusting = ClientAddresses.from_setting("")
    assert untrusting.of(conn("10.0.0.5", "1.2.3.4")) == "10.0.0.5"
    proxied = ClientAddresses.from_setting("10.0.0.0/8, 127.0.0.1")
    assert proxied.of(conn("10.0.0.5", "6.6.6.6, 1.2.3.4, 10.0.0.9")) == "1.2.3.4"
    assert proxied.of(conn("192.0.2.1", "1.2.3.4")) == "192.0.2.1"  # not from the proxy
    assert proxied.of(conn("10.0.0.5", None)) == "10.0.0.5"


def test_token_bucket_refills_at_the_rate() -> None:
    from bot.web.admission import LocalAdmission, Refused

    now = [0.0]
    admission = LocalAdmission(5, rate_per_minute=60, burst=2, clock=lambda: now[0])
    admission.check_rate("webrtc", "a")
    admission.check_rate("webrtc", "a")
    with pytest.raises(Refused) as refused:
        admission.check_rate("webrtc", "a")
    assert refused.value.status_code == 429 and refused.value.retry_after_s == 1
    now[0] += 1.0
    admission.check_rate("webrtc", "a")
    slot = admission.acquire("webrtc", "a")
    slot.release()
    slot.release()  # idempotent
    assert admission.in_use == 0


def test_serve_host_flag_reaches_the_app(data_dir, monkeypatch) -> None:
    # the Procfile runs `callagent serve --host 0.0.0.0`: were the flag only uvicorn's, the app
    # would think it is on loopback and open browser calls to everyone
    from types import SimpleNamespace

    import uvicorn

    import bot.cli
    import bot.serving.serve
    import bot.web.app
    from bot.cli import main

    monkeypatch.setattr(bot.cli, "configure_logging", lambda *_args: None)

    seen: dict[str, Any] = {}

    def create_app(settings: Any) -> Any:
        seen["s"] = settings
        return SimpleNamespace(state=SimpleNamespace(drain=SimpleNamespace(run=None)))

    monkeypatch.setattr(bot.web.app, "create_app", create_app)

    class NotServing:  # `callagent serve` builds a uvicorn server (bot/serving/server.py)
        started = True

        def __init__(self, config: uvicorn.Config, **_kwargs: Any) -> None:
            seen["run"] = {"host": config.host, "proxy_headers": config.proxy_headers}

        def run(self, sockets: Any = None) -> None:
            pass

    monkeypatch.setattr(bot.serving.serve, "DrainingServer", NotServing)
    assert main(["serve", "--host", "0.0.0.0", "--port", "8000"]) == 0
    assert seen["s"].host == "0.0.0.0" and seen["run"]["host"] == "0.0.0.0"
    assert seen["run"]["proxy_headers"] is False  # X-Forwarded-For: CALLAGENT_TRUSTED_PROXIES'


async def test_a_call_holds_its_slot_until_it_ends() -> None:
    from bot.call.pipeline import CallSpec
    from bot.web.admission import LocalAdmission
    from bot.web.call_manager import CallManager

    admission = LocalAdmission(1, 0, 1)
    ended = asyncio.Event()

    async def call() -> None:
        await ended.wait()

    slot = admission.acquire("webrtc", "client")
    task = CallManager().start(call(), CallSpec("webrtc", 16000, 24000), slot)
    await asyncio.sleep(0)
    assert admission.in_use == 1
    ended.set()
    await task
    await asyncio.sleep(0)
    assert admission.in_use == 0
