"""What a SIP call's media delivers from the caller, checked and queued for the pipeline.

:class:`CallerInput` takes the media's callbacks (``on_audio``, ``on_dtmf``) and the call's
end, drops what is malformed (logged by kind and size, never content: digits are caller
data), and hands the rest over in order: 8 kHz PCM16 chunks, keypad keys, then the end.
The callbacks arrive on the event loop (asyncio datagram protocols) and only enqueue; one
from another thread hops onto the loop. The backlog is bounded: when the pipeline falls
behind (or has not started yet) the oldest audio goes, never a key or the end.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, deque

from loguru import logger
from pipecat.audio.dtmf.types import KeypadEntry

from transports.sip.contracts import EndReason, SipCall

MAX_AUDIO_CHUNK_BYTES = 8000 * 2
"""A chunk from the media longer than one second is not audio we expect; it is dropped."""

_LOGGED_DROPS_PER_KIND = 5
_ENDED = object()


class CallerInput:
    """The caller's audio chunks, keys and hang-up, in order, from the moment of creation.

    Args:
        call: The call whose media to listen to (its callbacks are set here).
        max_chunks: Audio chunks kept while the pipeline is behind.
    """

    def __init__(self, call: SipCall, max_chunks: int):
        self._call = call
        self._max_chunks = max_chunks
        self._pending: deque[object] = deque()
        self._pending_audio = 0
        self._wake = asyncio.Event()
        self._drops: Counter[str] = Counter()
        self._log = logger.bind(provider_call_id=call.call_id)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = threading.get_ident()
        self.reading = False
        """Set once the pipeline reads: from then on a full backlog is logged."""
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            pass
        call.media.on_audio = self._on_audio
        call.media.on_dtmf = self._on_dtmf
        call.on_end(self._on_end)

    def bind_loop(self) -> None:
        """Take the running loop as the one callbacks must run on (call from that loop)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    async def next(self) -> bytes | KeypadEntry | None:
        """The next audio chunk or key; None once the peer ended the call."""
        while not self._pending:
            self._wake.clear()
            await self._wake.wait()
        item = self._pending.popleft()
        if isinstance(item, bytes):
            self._pending_audio -= 1
            return item
        return item if isinstance(item, KeypadEntry) else None

    def detach(self) -> None:
        """Stop listening to the media."""
        self._call.media.on_audio = None
        self._call.media.on_dtmf = None

    def _on_audio(self, pcm: bytes) -> None:
        if not isinstance(pcm, bytes | bytearray):
            self._drop("bad_audio", f"a {type(pcm).__name__}, not bytes")
        elif not 0 < len(pcm) <= MAX_AUDIO_CHUNK_BYTES or len(pcm) % 2:
            self._drop("bad_audio_size", f"{len(pcm)} bytes")
        else:
            self._enqueue(pcm if isinstance(pcm, bytes) else bytes(pcm))  # the media made it

    def _on_dtmf(self, key: str) -> None:
        try:
            entry = KeypadEntry(key)
        except ValueError:
            # Never the key itself in the log; A-D (RFC 4733) are not on Pipecat's keypad.
            size = len(key) if isinstance(key, str) else -1
            self._drop("bad_dtmf", f"not a keypad key ({size} characters)")
            return
        self._enqueue(entry)

    def _on_end(self, reason: EndReason) -> None:
        if reason != "local_bye":  # we hung up ourselves: the pipeline is already ending
            self._enqueue(_ENDED)

    def _drop(self, kind: str, detail: str) -> None:
        self._drops[kind] += 1
        count = self._drops[kind]
        if count <= _LOGGED_DROPS_PER_KIND or count % 1000 == 0:
            self._log.warning(f"SIP call: dropped input ({kind}: {detail}; {count} so far)")

    def _enqueue(self, item: object) -> None:
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._enqueue, item)
            return
        if isinstance(item, bytes):
            if self._pending_audio >= self._max_chunks:
                self._pending.remove(next(i for i in self._pending if isinstance(i, bytes)))
                self._pending_audio -= 1
                if self.reading:
                    self._drop("input_backlog", f"{self._max_chunks} chunks waiting")
            self._pending_audio += 1
        self._pending.append(item)
        self._wake.set()
