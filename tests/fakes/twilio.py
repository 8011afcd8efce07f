"""Fake Twilio: its REST API (the simulator's, reused) and the Media Streams WebSocket's start.

:class:`FakeTwilioRest` is :class:`simulator.fake_twilio.FakeTwilioRest`, imported here so
the tests have one place for their fakes; the simulator keeps the implementation.
"""

from __future__ import annotations

import asyncio
import json

from simulator.fake_twilio import FakeTwilioRest

__all__ = ["FakeSocket", "FakeTwilioRest"]


class FakeSocket:
    """Just enough of Starlette's WebSocket for ``read_stream_start``.

    Hands out ``messages`` in turn (a dict or str as a text message, a ``websocket.*`` dict
    as is), then a disconnect, or, with ``hang``, nothing ever again.
    """

    def __init__(self, *messages: object, hang: bool = False):
        self._messages = list(messages)
        self._hang = hang

    async def receive(self) -> dict:
        """The next ASGI WebSocket message."""
        if not self._messages:
            if self._hang:
                await asyncio.sleep(3600)
            return {"type": "websocket.disconnect", "code": 1000}
        m = self._messages.pop(0)
        if isinstance(m, dict) and m.get("type", "").startswith("websocket."):
            return m
        text = m if isinstance(m, str) else json.dumps(m)
        return {"type": "websocket.receive", "text": text}
