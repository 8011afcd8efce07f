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
            page.goto(f"{server.url}/?raw=1#caller=browser-test")  # a fragment: never sent
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
    # The caller id went in the offer's body, never in a URL the server logs (issue 16).
    assert "browser-test" not in server.log_path.read_text(errors="replace")
