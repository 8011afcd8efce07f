"""uvicorn's server with the drain first: SIGTERM drains the calls before uvicorn shuts down.

uvicorn's own shutdown closes every connection at once, and every live call is a WebSocket
(Twilio) or a peer connection that would be dropped. :class:`DrainingServer` takes the
first SIGTERM (or SIGINT) itself: it runs the app's drain (``app.state.drain``,
:mod:`bot.web.drain`) while still serving (``/readyz`` answers 503, Twilio's callbacks for
the live calls still arrive), and only then lets uvicorn shut down; the process exits 0. A
second signal stops at once.

Under the supervisor (``callagent serve --workers N``) it also tells the supervisor when it
accepts calls (``ready``, once its models are loaded and the app started), asks for its
replacement when it should recycle, and on SIGUSR1 retires: stops accepting (its siblings
and its replacement take the new connections) and drains. A worker whose supervisor is gone
drains too.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
from collections.abc import Awaitable, Callable
from types import FrameType

import uvicorn
from loguru import logger

from bot.serving.recycle import RecyclePolicy

RETIRE_SIGNAL = signal.SIGUSR1
"""The supervisor's "your replacement accepts calls: stop accepting, drain and exit"."""


class SupervisorLink:
    """A worker's line to its supervisor: one short message a line on an inherited pipe.

    Messages are ``ready <pid>`` and ``recycle <pid>`` (each a single ``write`` shorter
    than ``PIPE_BUF``, so lines from several workers never interleave).

    Args:
        fd: The pipe's write end.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.parent_pid = os.getppid()

    def send(self, kind: str) -> None:
        """Tell the supervisor ``kind`` about this process (a gone supervisor is ignored)."""
        try:
            os.write(self.fd, f"{kind} {os.getpid()}\n".encode())
        except OSError:
            logger.warning(f"the supervisor is gone; could not tell it {kind!r}")

    @property
    def supervisor_alive(self) -> bool:
        """Whether the supervisor that started this process still runs."""
        return os.getppid() == self.parent_pid


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM drains the calls before shutting down.

    Args:
        config: uvicorn's configuration (``bot.cli.server_config``).
        drain: The app's drain (``app.state.drain.run``).
        calls_started: Calls this process has started (for recycling).
        recycle: When to ask the supervisor for a replacement (needs ``link``).
        link: The supervisor's pipe (None: a process on its own).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        drain: Callable[[], Awaitable[None]],
        calls_started: Callable[[], int] = lambda: 0,
        recycle: RecyclePolicy | None = None,
        link: SupervisorLink | None = None,
    ) -> None:
        super().__init__(config)
        self._drain = drain
        self._calls_started = calls_started
        self._recycle = recycle if recycle is not None and link is not None else RecyclePolicy()
        self._link = link
        self._stop_requested = False
        self._retire = False
        self._drain_task: asyncio.Task[None] | None = None
        self._recycle_asked = False

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve until drained; under a supervisor, SIGUSR1 retires the worker."""
        if self._link is not None and threading.current_thread() is threading.main_thread():
            signal.signal(RETIRE_SIGNAL, self._on_retire)
        await super().serve(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start as uvicorn does; then tell the supervisor this process accepts calls."""
        await super().startup(sockets)
        if self.started and self._link is not None:
            self._link.send("ready")

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First SIGTERM/SIGINT: drain, then exit 0. A second one: stop now."""
        if not self._stop_requested:
            logger.info(
                f"signal {signal.Signals(sig).name}: draining before shutting down (send it "
                "again to stop at once)"
            )
            self._stop_requested = True
            return
        logger.warning(f"signal {signal.Signals(sig).name} again: stopping without draining")
        self.should_exit = True
        self.force_exit = True

    def _on_retire(self, _sig: int, _frame: FrameType | None) -> None:
        self._retire = True
        self._stop_requested = True

    async def on_tick(self, counter: int) -> bool:
        """Uvicorn's tick (every 0.1 s); also starts the drain and checks recycling."""
        if counter % 10 == 0:
            self._check_supervisor()
        if self._stop_requested and self._drain_task is None:
            if self._retire:  # the replacement accepts: new connections go to it
                logger.info("retiring: no more connections accepted here")
                for server in getattr(self, "servers", []):
                    server.close()
            self._drain_task = asyncio.create_task(self._drain_then_exit(), name="drain")
        return await super().on_tick(counter)

    def _check_supervisor(self) -> None:
        link = self._link
        if link is None or self._drain_task is not None:
            return
        if not link.supervisor_alive:
            logger.warning("the supervisor is gone: draining")
            self._stop_requested = True
            return
        if self._recycle.enabled and not self._recycle_asked:
            reason = self._recycle.reason(self._calls_started())
            if reason:
                logger.info(f"recycling: this process {reason}; asking for a replacement")
                self._recycle_asked = True
                link.send("recycle")

    async def _drain_then_exit(self) -> None:
        try:
            await self._drain()
        except Exception:
            logger.exception("drain failed; shutting down")
        finally:
            self.should_exit = True
