"""The real server on a loopback port, in its own thread, for the end-to-end tests.

``bot.web.app.create_app`` runs with the real models and Twilio signature checks, against
the fake Twilio REST API; the log lines it writes are kept for the assertions.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from loguru import logger

from simulator.server_thread import ThreadedServer
from simulator.voices import caller_voice
from tests.fakes.twilio import FakeTwilioRest

ExtraSettings = Callable[[], Awaitable[dict[str, str]]]
"""Started on the server's event loop before the app: more settings (e.g. a webhook URL)."""


@dataclass
class LiveServer:
    """The running server, the fake REST API it hangs up through, and what it logged."""

    server: ThreadedServer
    rest: FakeTwilioRest
    runtime: Any
    log_lines: list[str]


@contextmanager
def live_server(
    account: str, token: str, *, data_prefix: str, extra: ExtraSettings | None = None
) -> Iterator[LiveServer]:
    """Start the real server for Twilio account ``account`` (skips the test without flite).

    Args:
        account: The Twilio account SID the server and the fake REST API share.
        token: The auth token that signs the webhooks.
        data_prefix: Prefix of the temporary data directory (call records, caches).
        extra: Starts anything else the app talks to and returns its settings.
    """
    if caller_voice.engine() is None:
        pytest.skip("needs Debian's flite for the caller voice (apt-get install flite)")
    from bot.settings import Settings
    from bot.web.app import create_app

    state: dict[str, Any] = {}
    data_dir = tempfile.mkdtemp(prefix=data_prefix)

    async def make_app():
        rest = FakeTwilioRest(account, token)
        await rest.start()
        state["rest"] = rest
        settings = Settings.load(
            {
                "TWILIO_ACCOUNT_SID": account,
                "TWILIO_AUTH_TOKEN": token,
                "TWILIO_API_BASE_URL": rest.base_url,
                "TWILIO_VALIDATE_SIGNATURES": "true",
                "CALLAGENT_DATA_DIR": data_dir,
                **(await extra() if extra is not None else {}),
            }
        )
        app = create_app(settings)
        state["app"] = app
        return app

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")
    server = ThreadedServer(make_app).start()
    try:
        yield LiveServer(server, state["rest"], state["app"].state.runtime, lines)
    finally:
        server.stop()
        logger.remove(sink)
