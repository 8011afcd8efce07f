"""Serve the agent's app in-process: uvicorn on a loopback port, in a thread of its own.

The machinery behind :class:`simulator.local_agent.LocalAgent` (thread mode), which is how
the simulator, the benches and the tests start the agent; use that instead.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any


class ThreadedServer:
    """Serve an ASGI app with uvicorn on a loopback port, in a thread with its own event loop.

    The app is built by ``make_app`` inside that loop (so it may start other servers there
    and load models without blocking the caller's loop).
    """

    def __init__(
        self,
        make_app: Callable[[], Awaitable[Any]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ready_timeout_s: float = 900.0,
    ):
        """Prepare the server (call :meth:`start`); ``port`` 0 picks a free one."""
        self._make_app = make_app
        self.host = host
        self.port = port
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready_timeout_s = ready_timeout_s
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._server: Any = None
        self._thread = threading.Thread(target=self._run, name="callagent-server", daemon=True)

    @property
    def base_url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def ws_url(self, path: str) -> str:
        """``ws://host:port`` + ``path``."""
        return f"ws://{self.host}:{self.port}{path}"

    def start(self) -> ThreadedServer:
        """Start and wait until it listens.

        Raises:
            RuntimeError: the app failed to build or the server did not start in time.
        """
        self._thread.start()
        if not self._ready.wait(self._ready_timeout_s):
            raise RuntimeError("the server did not start in time")
        if self._error is not None:
            raise RuntimeError(f"the server failed to start: {self._error}") from self._error
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Shut down (graceful, then forced) and wait for the thread."""
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(timeout_s)
        if self._thread.is_alive() and self._server is not None:
            self._server.force_exit = True
            self._thread.join(5)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # surfaced to start()
            self._error = self._error or e
            self._ready.set()

    async def _main(self) -> None:
        import uvicorn

        from bot.web.app import WEBSOCKET_OPTIONS

        self.loop = asyncio.get_running_loop()
        app = await self._make_app()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            **WEBSOCKET_OPTIONS,
            timeout_graceful_shutdown=5,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        serving = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started and not serving.done():
            await asyncio.sleep(0.05)
        self._ready.set()
        await serving
