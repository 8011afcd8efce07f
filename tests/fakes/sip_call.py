"""A fake established SIP call for the transport's processor tests (no sockets).

:class:`FakeSipMedia` keeps the contract of :class:`transports.sip.contracts.SipMedia`:
``send_pcm`` queues, a pacer sends one 20 ms packet per 20 ms (into ``sent``), ``flush``
drops the queue, and while ``held`` nothing is sent and writes are dropped (and counted).
:class:`FakeSipCall` records hang-ups and can be ended "by the peer".
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

from transports.sip.contracts import EndReason, InviteInfo, ReferOutcome, SipDirection

PACKET_BYTES = 320  # 20 ms at 8 kHz, 16-bit
BYTES_PER_S = 16000


class FakeSipMedia:
    """The media of a fake call (8 kHz PCM16 both ways, paced like the real one)."""

    def __init__(self) -> None:
        self.on_audio: Callable[[bytes], None] | None = None
        self.on_dtmf: Callable[[str], None] | None = None
        self.held_flag = False
        self.sent = bytearray()
        self.writes_while_held = 0
        self.found_held = 0
        """Times the call was found on hold (each bot audio chunk held asks once)."""
        self.flushes: list[float] = []
        self.sent_at_flush: list[float] = []
        self._queue = bytearray()
        self._pacer: asyncio.Task[None] | None = None

    # What the peer does.

    def caller_says(self, pcm: bytes) -> None:
        """Deliver caller audio as the real media does (one callback per chunk)."""
        if self.on_audio is not None:
            self.on_audio(pcm)

    def caller_presses(self, key: str) -> None:
        """Deliver one key press."""
        if self.on_dtmf is not None:
            self.on_dtmf(key)

    # The contract.

    def send_pcm(self, pcm16_8k: bytes) -> None:
        """Queue bot audio (dropped while held)."""
        if self.held_flag:
            self.writes_while_held += 1
            return
        self._queue.extend(pcm16_8k)
        if self._pacer is None or self._pacer.done():
            self._pacer = asyncio.get_running_loop().create_task(self._pace())

    def flush(self) -> float:
        """Drop the queued audio; returns its seconds."""
        dropped = len(self._queue) / BYTES_PER_S
        self._queue.clear()
        self.flushes.append(dropped)
        self.sent_at_flush.append(self.sent_s)
        return dropped

    @property
    def queued_s(self) -> float:
        """Seconds queued, not yet sent."""
        return len(self._queue) / BYTES_PER_S

    @property
    def held(self) -> bool:
        """The peer put the call on hold."""
        self.found_held += self.held_flag
        return self.held_flag

    @property
    def sent_s(self) -> float:
        """Seconds of bot audio sent so far."""
        return len(self.sent) / BYTES_PER_S

    async def _pace(self) -> None:
        next_tick = time.monotonic()
        while self._queue:
            next_tick += 0.02
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            if self.held_flag:
                continue
            self.sent.extend(self._queue[:PACKET_BYTES])
            del self._queue[:PACKET_BYTES]

    def close(self) -> None:
        """Stop the pacer."""
        if self._pacer is not None:
            self._pacer.cancel()


class FakeSipCall:
    """An established fake call; ``hang_up`` and :meth:`peer_hangs_up` end it."""

    def __init__(self, call_id: str = "fake-call-1@127.0.0.1") -> None:
        self.media = FakeSipMedia()
        self.hang_ups = 0
        self.queued_at_hang_up: float | None = None
        self._call_id = call_id
        self._end_reason: EndReason | None = None
        self._callbacks: list[Callable[[EndReason], Awaitable[None] | None]] = []
        self.invite = InviteInfo(call_id, ("127.0.0.1", 5062), caller="100", callee="200")

    @property
    def call_id(self) -> str:
        """The SIP Call-ID."""
        return self._call_id

    @property
    def direction(self) -> SipDirection:
        """Always inbound."""
        return "inbound"

    @property
    def ended(self) -> bool:
        """The dialog is over."""
        return self._end_reason is not None

    @property
    def end_reason(self) -> EndReason | None:
        """Why it ended."""
        return self._end_reason

    def on_end(self, callback: Callable[[EndReason], Awaitable[None] | None]) -> None:
        """Call ``callback`` when the call ends (at once if it has)."""
        self._callbacks.append(callback)
        if self._end_reason is not None:
            self._run(callback, self._end_reason)

    async def hang_up(self) -> None:
        """Our BYE."""
        self.hang_ups += 1
        if self._end_reason is None:
            self.queued_at_hang_up = self.media.queued_s
            self._end(reason="local_bye")

    def peer_hangs_up(self, reason: EndReason = "remote_bye") -> None:
        """The peer's BYE (or another remote end)."""
        if self._end_reason is None:
            self._end(reason)

    async def refer(self, target: str, *, timeout_s: float = 30.0) -> ReferOutcome:
        """Not used by the transport."""
        return ReferOutcome(False, 0, "not in the fake")

    def _end(self, reason: EndReason) -> None:
        self._end_reason = reason
        self.media.close()
        for callback in self._callbacks:
            self._run(callback, reason)

    @staticmethod
    def _run(callback: Callable[[EndReason], Awaitable[None] | None], reason: EndReason) -> None:
        result = callback(reason)
        if inspect.isawaitable(result):
            asyncio.ensure_future(result)
