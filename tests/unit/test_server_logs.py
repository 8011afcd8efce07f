"""The server's access log carries no query strings (issue 16, finding 4).

The attack: ``callagent serve``'s access log printed ``GET /?caller=+15550004321``. The
real app (``create_app``) is served by uvicorn exactly as ``callagent serve`` configures
it (``configure_logging`` + ``server_config``) on a loopback port, and requested with
caller data and a hand-off token in the query.
"""

import asyncio
import socket
import sys
from typing import Any, cast

import httpx
import uvicorn
from loguru import logger

from bot.call.runtime import Runtime
from bot.cli import configure_logging, server_config
from bot.settings import Settings
from bot.web.app import create_app

NUMBER = "5550004321"


async def serve_and_get(app: Any, settings: Settings, paths: list[str]) -> list[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(app, settings, host="127.0.0.1", port=port))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not serving.done(), "the server did not start"
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            return [(await client.get(path)).status_code for path in paths]
    finally:
        server.should_exit = True
        await serving


async def test_the_access_log_has_no_query_strings(data_dir, agent):
    settings = Settings.load({"CALLAGENT_LOG_LEVEL": "INFO"})
    unused = cast(Any, None)  # nothing here places a call
    runtime = Runtime(settings, agent, None, None, unused, unused, None)
    app = create_app(settings, runtime)
    lines: list[str] = []
    try:
        configure_logging("INFO")
        logger.add(lambda m: lines.append(str(m)), level="INFO", format="{name} {message}")
        statuses = await serve_and_get(
            app,
            settings,
            [
                f"/?caller=+1{NUMBER}&raw=1",
                f"/?caller=%2B1{NUMBER}",
                f"/healthz?caller=+1{NUMBER}",
                "/twilio/whisper?h=secret-handoff-token",
            ],
        )
    finally:
        logger.remove()
        logger.add(sys.stderr)
        if runtime.records is not None:
            runtime.records.store.close()
    assert statuses[:3] == [200, 200, 200]
    access = [line for line in lines if "HTTP/1.1" in line]
    assert len(access) == 4, lines
    assert any('"GET /?… HTTP/1.1" 200' in line for line in access)
    assert any('"GET /healthz?… HTTP/1.1" 200' in line for line in access)
    assert not [line for line in lines if NUMBER in line or "secret-handoff-token" in line]


def test_a_logged_exception_shows_no_variable_of_its_frames(capfd):
    def look_up(caller: str) -> None:
        raise LookupError("no such customer")

    try:
        configure_logging("INFO")
        try:
            caller = "+1" + NUMBER
            look_up(caller)
        except LookupError:
            logger.exception("CRM lookup failed")
    finally:
        logger.remove()
        logger.add(sys.stderr)
    logged = capfd.readouterr().err
    assert "LookupError: no such customer" in logged
    assert NUMBER not in logged
