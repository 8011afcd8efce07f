"""The one way the fakes serve HTTP: an aiohttp app on a free loopback port."""

from __future__ import annotations

from typing import Self

from aiohttp import web


class LoopbackServer:
    """An aiohttp application on ``127.0.0.1`` and a port the OS picks.

    Subclasses add their routes in :meth:`routes`; ``async with`` (or :meth:`start` and
    :meth:`stop`) runs the server, and :attr:`origin` is where it answers.
    """

    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``, once started."""
        return f"http://127.0.0.1:{self.port}"

    def routes(self, app: web.Application) -> None:
        """Add the fake's routes to ``app``."""
        raise NotImplementedError

    async def start(self) -> Self:
        """Serve until :meth:`stop`."""
        app = web.Application()
        self.routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
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
