"""The WebRTC signalling routes and offer parsing, without a browser (the browser call is
in tests/e2e/test_browser_call.py)."""

from __future__ import annotations

import pytest

OFFER_SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


@pytest.fixture
def signalling():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from transports.webrtc import create_webrtc_router

    calls: list[dict[str, str]] = []

    async def on_connection(_connection, params: dict[str, str], _slot) -> None:
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
    response = client.post("/api/offer", content=body, headers={"Content-Type": "application/json"})
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
    from transports.webrtc_signalling import parse_offer

    body = {"sdp": OFFER_SDP, "request_data": {"caller": "+15550001", "n": 3, "x": {"a": 1}}}
    request, params = parse_offer(body, {"source": "page"})
    assert params == {"source": "page", "caller": "+15550001", "n": "3"}
    assert request.request_data is None  # never handed to Pipecat, whose error logs print it
