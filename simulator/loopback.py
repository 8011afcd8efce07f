"""The one way the fakes serve HTTP: an aiohttp app on a free loopback port.

The simulator's fakes (:mod:`simulator.fake_cartesia`) and the tests' (``tests/fakes/``)
alike.
"""

from __future__ import annotations

from typing import Self

from aiohttp import web


class LoopbackServer:
    """An aiohttp application on :attr:`host` (``127.0.0.1``) and a port the OS picks.

    Subclasses add their routes in :meth:`routes`; ``async with`` (or :meth:`start` and
    :meth:`stop`) runs the server, and :attr:`origin` is where it answers.
    """

    host: str = "127.0.0.1"
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def origin(self) -> str:
        """``http://<host>:<port>``, once started."""
        return f"http://{self.host}:{self.port}"

    def routes(self, app: web.Application) -> None:
        """Add the fake's routes to ``app``."""
        raise NotImplementedError

    async def start(self) -> Self:
        """Serve until :meth:`stop`."""
        app = web.Application()
        self.routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.host, 0).start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()
