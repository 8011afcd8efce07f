"""``callagent serve``: one process, or a supervisor and its workers.

One process (``--workers 1``, no recycling) serves as it always did, with the drain on
SIGTERM. More workers, or recycling, run :class:`~bot.serving.supervisor.Supervisor`,
whose workers are ``callagent serve`` again, handed the listening socket and the status
pipe. Processes that serve one deployment must share its calls' state
(``CALLAGENT_SHARED_STATE_URL``): with the in-process default each would see only its own
calls (Twilio callbacks and operator actions would miss the calls of the others).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import Any

import uvicorn
from loguru import logger

from bot.serving.recycle import RecyclePolicy
from bot.serving.server import DrainingServer, SupervisorLink
from bot.settings import Settings, SettingsError

ServerConfig = Callable[[Any, Settings], uvicorn.Config]
"""How uvicorn runs an app (``bot.cli.server_config``)."""


def serve(
    settings: Settings,
    server_config: ServerConfig,
    *,
    listen_fd: int | None = None,
    status_fd: int | None = None,
) -> int:
    """Serve the agent until SIGTERM (drained); returns the exit code.

    Args:
        settings: The settings (``host``, ``port`` and ``workers`` as the command line says).
        server_config: How uvicorn runs the app.
        listen_fd: A worker's inherited listening socket (None: not a worker).
        status_fd: A worker's pipe to its supervisor.

    Raises:
        SettingsError: several processes without a shared state.
    """
    recycle = RecyclePolicy(settings.recycle_after_calls, settings.recycle_after_mb)
    if listen_fd is None and (settings.workers > 1 or recycle.enabled):
        check_shared_state(settings, recycle)
        return supervise(settings)
    return serve_one(
        settings, server_config, listen_fd=listen_fd, status_fd=status_fd, recycle=recycle
    )


def check_shared_state(settings: Settings, recycle: RecyclePolicy) -> None:
    """Several processes serve the calls: they must share state.

    Raises:
        SettingsError: ``CALLAGENT_SHARED_STATE_URL`` is empty (the in-process state).
    """
    if settings.shared_state_url:
        return
    why = (
        f"--workers {settings.workers} (CALLAGENT_WORKERS)"
        if settings.workers > 1
        else "CALLAGENT_RECYCLE_AFTER_CALLS/CALLAGENT_RECYCLE_AFTER_MB (a replacement "
        "process serves beside the old one while it drains)"
    )
    raise SettingsError(
        [
            f"{why} needs CALLAGENT_SHARED_STATE_URL (redis://... or postgresql://...): with "
            "the in-process state the processes could not see each other's calls (Twilio "
            "callbacks and operator actions would miss them). Set it, or serve one process "
            "with no recycling."
        ]
    )


def supervise(settings: Settings) -> int:
    """Run the supervisor with ``settings.workers`` workers on ``host:port``."""
    from bot.serving.supervisor import Supervisor, bind_socket

    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as e:
        logger.error(f"cannot listen on {settings.host}:{settings.port}: {e}")
        return 3

    def command(listen_fd: int, status_fd: int) -> list[str]:
        return [
            *(sys.executable, "-m", "bot.cli", "serve"),
            *("--host", settings.host, "--port", str(settings.port)),
            # a worker knows its siblings: the load thresholds are about the host's cores
            *("--workers", str(settings.workers)),
            *("--listen-fd", str(listen_fd), "--status-fd", str(status_fd)),
        ]

    return Supervisor(command, settings.workers, sock).run()


def serve_one(
    settings: Settings,
    server_config: ServerConfig,
    *,
    listen_fd: int | None = None,
    status_fd: int | None = None,
    recycle: RecyclePolicy | None = None,
) -> int:
    """Serve in this process (alone, or as a supervisor's worker) until drained."""
    from bot.web.app import create_app

    app = create_app(settings)  # the models load before anything is accepted
    link = SupervisorLink(status_fd) if status_fd is not None else None
    server = DrainingServer(
        server_config(app, settings),
        drain=app.state.drain.run,
        calls_started=lambda: app.state.runtime.live.started,
        recycle=recycle,
        link=link,
    )
    sockets = [socket.socket(fileno=listen_fd)] if listen_fd is not None else None
    server.run(sockets=sockets)
    return 0 if server.started else 3  # as uvicorn.run: the server could not start
