"""A real browser call: headless Chromium calls the real server over WebRTC.

The caller is a synthetic voice (flite "slt", not the bot's Piper voice) fed to
Chromium as its microphone. The server (``bot.web.app.create_app``, embedded speech stack)
and Chromium share a private network namespace so ICE runs over loopback; see
``tests/support/browser.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.browser import (
    AppServer,
    NetNamespace,
    chromium_args,
    make_caller_wav,
    missing_tools,
)

CALLER_SAYS = "What are your opening hours?"
LEAD_SILENCE_S = 8.0  # the greeting plays before the caller speaks
CALL_TIMEOUT_MS = 90_000

USER_HEARD = """() => window.callagent.transcript.some(
    (t) => t.role === "user" && /hours/i.test(t.text))"""
BOT_REPLIED = """() => {
    const t = window.callagent.transcript;
    const user = t.findIndex((e) => e.role === "user" && /hours/i.test(e.text));
    return user >= 0 && t.slice(user + 1).some((e) => e.role === "bot" && e.text.length > 0);
}"""


def server_env(tmp_path: Path) -> dict[str, str]:
    """Settings for an offline server (embedded speech, no LLM, no cloud)."""
    return {
        "CALLAGENT_TRANSPORT": "webrtc",
        "CALLAGENT_STT": "moonshine",
        "CALLAGENT_TTS": "piper",
        "CALLAGENT_LLM": "none",
        "CALLAGENT_DATA_DIR": str(tmp_path / "data"),
        "CALLAGENT_LOG_LEVEL": "INFO",
    }


@pytest.fixture
def call_setup(tmp_path: Path):
    missing = missing_tools()
    if missing:
        pytest.skip("browser call test needs: " + ", ".join(missing))
    if os.geteuid() != 0:
        pytest.skip("browser call test needs root to create a network namespace (ip netns)")
    wav = make_caller_wav(tmp_path / "caller.wav", CALLER_SAYS, lead_silence_s=LEAD_SILENCE_S)
    with (
        NetNamespace() as netns,
        AppServer(netns, server_env(tmp_path), tmp_path / "server.log") as server,
    ):
        yield netns, server, wav


@pytest.mark.browser
@pytest.mark.e2e
def test_browser_call_hears_caller_and_answers(call_setup, tmp_path: Path) -> None:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    netns, server, wav = call_setup
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(netns.chromium_wrapper(tmp_path)),
            headless=False,  # --headless=new is in the args
            args=chromium_args(wav),
        )
        try:
            page = context.new_page()
            page.goto(f"{server.url}/?raw=1&caller=browser-test")
            page.get_by_role("button", name="Call").click()
            try:
                page.wait_for_function(USER_HEARD, timeout=CALL_TIMEOUT_MS)
                page.wait_for_function(BOT_REPLIED, timeout=CALL_TIMEOUT_MS)
                page.wait_for_function("() => window.callagent.audioReceived", timeout=10_000)
            except PlaywrightError as e:
                page.screenshot(path=str(tmp_path / "failed-call.png"))
                state = page.evaluate("() => window.callagent")
                raise AssertionError(
                    f"{e.message}\npage: {state}\nserver log:\n{server.log_tail()}"
                ) from None
            page.screenshot(path=str(tmp_path / "mid-call.png"))
            state = page.evaluate("() => window.callagent")
            page.get_by_role("button", name="Hang up").click()
            page.wait_for_function("() => window.callagent.callState === 'ended'", timeout=10_000)
        finally:
            context.close()

    bot_lines = [t["text"] for t in state["transcript"] if t["role"] == "bot" and t["text"]]
    user_lines = [t["text"] for t in state["transcript"] if t["role"] == "user"]
    assert any("hours" in line.lower() for line in user_lines), state["transcript"]
    assert bot_lines, "no bot transcript reached the page"
    assert state["audioReceived"], "the page heard no (non-silent) bot audio"
    assert state["botReady"], "no RTVI bot-ready"
    assert state["latencies"], "no latency server-message reached the page"


# -- The signalling routes, without a browser ---------------------------------------

OFFER_SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


@pytest.fixture
def signalling():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from transports.webrtc import create_webrtc_router

    calls: list[dict[str, str]] = []

    async def on_connection(_connection, params: dict[str, str]) -> None:
        calls.append(params)

    app = FastAPI()
    app.include_router(create_webrtc_router(on_connection, ice_servers=["stun:stun.invalid:3478"]))
    with TestClient(app) as client:
        yield client, calls


def test_page_and_static_files_are_served(signalling) -> None:
    client, _ = signalling
    page = client.get("/")
    assert page.status_code == 200 and "call.js" in page.text
    assert client.get("/static/call.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/call.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/webrtc.py").status_code == 404
    assert client.get("/api/webrtc-config").json() == {
        "iceServers": [{"urls": "stun:stun.invalid:3478"}]
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "must be JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"{}", "'sdp' is required"),
        (b'{"sdp": "hello"}', "not an SDP description"),
        (b'{"sdp": "v=0\\r\\ns=-\\r\\n"}', "no audio section"),
        (b'{"sdp": "v=0\\r\\nm=audio 9 RTP/AVP 0\\r\\n", "type": "answer"}', "'type'"),
        (b'{"sdp": "v=0\\r\\nm=audio 9 RTP/AVP 0\\r\\n", "request_data": 5}', "request_data"),
    ],
)
def test_bad_offers_are_400_with_a_reason(signalling, body: bytes, message: str) -> None:
    client, calls = signalling
    response = client.post("/api/offer", content=body)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert not calls


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"candidates": []}, 400, "'pc_id' is required"),
        ({"pc_id": "x"}, 400, "'candidates' is required"),
        ({"pc_id": "x", "candidates": ["c"]}, 400, "must be an object"),
        (
            {
                "pc_id": "x",
                "candidates": [{"candidate": "junk", "sdpMid": "0", "sdpMLineIndex": 0}],
            },
            400,
            "not an ICE candidate",
        ),
        (
            {
                "pc_id": "unknown",
                "candidates": [
                    {
                        "candidate": "candidate:1 1 udp 2122260223 127.0.0.2 5000 typ host",
                        "sdpMid": "0",
                        "sdpMLineIndex": 0,
                    }
                ],
            },
            404,
            "not found",
        ),
    ],
)
def test_bad_ice_patches_are_rejected(signalling, body: dict, status: int, message: str) -> None:
    client, _ = signalling
    response = client.patch("/api/offer", json=body)
    assert response.status_code == status
    assert message in response.json()["detail"]


def test_offer_params_carry_the_caller() -> None:
    from transports.webrtc import parse_offer

    body = {"sdp": OFFER_SDP, "request_data": {"caller": "+15550001", "n": 3, "x": {"a": 1}}}
    request, params = parse_offer(body, {"source": "page"})
    assert params == {"source": "page", "caller": "+15550001", "n": "3"}
    assert request.request_data is None  # never handed to Pipecat, whose error logs print it
