"""A fake Cartesia: its STT and TTS WebSockets on one port, answering with realistic delays.

Speaks the wire protocol Pipecat's ``CartesiaSTTService`` and ``CartesiaTTSService`` use
(https://docs.cartesia.ai/api-reference/stt/stt, .../tts/websocket), so the agent runs its
real cloud speech path with ``CARTESIA_BASE_URL`` pointed here:

- ``/stt/websocket?model=..&encoding=pcm_s16le&sample_rate=16000``: binary PCM in, text
  ``finalize`` (the caller stopped speaking) and ``done``; out ``{"type": "transcript",
  "is_final": true, "text": ...}`` after :attr:`FakeCartesia.stt_delay`, then
  ``{"type": "flush_done"}``; ``{"type": "done"}`` on ``done``. It cannot hear: the text is
  the known phrase (:meth:`FakeCartesia.expect`) whose voiced length is nearest to the
  audio's since the last transcript.
- ``/tts/websocket``: ``{"transcript", "continue", "context_id", "output_format", ...}`` in;
  out, after :attr:`FakeCartesia.tts_first_byte` for a new context, ``chunk`` messages
  (base64 PCM at the asked rate: a voice-like buzz about as long as the text would take to
  say, streamed faster than real time), ``timestamps``, and ``done`` once the context is
  closed (``continue: false``); ``{"context_id", "cancel": true}`` stops a context.

Delays (seconds, drawn per request) are assumptions from published figures, not
measurements of Cartesia: :data:`STT_DELAY_S` and :data:`TTS_FIRST_BYTE_S`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from simulator.loopback import LoopbackServer

STT_DELAY_S = (0.15, 0.30, 0.02, 0.6)
"""Finalize -> final transcript: uniform 150-300 ms, with 2 % of answers up to 600 ms.
Assumed; Pipecat's STT benchmark puts Cartesia ink-whisper's p99 from speech end to final
transcript at 0.81 s (``pipecat.services.stt_latency.CARTESIA_TTFS_P99``), which includes
the agent's 0.2 s VAD stop before ``finalize`` is sent."""
TTS_FIRST_BYTE_S = (0.10, 0.20, 0.02, 0.35)
"""New context -> first audio chunk: uniform 100-200 ms, 2 % up to 350 ms. Assumed: Cartesia
states about 90 ms model latency for Sonic (cartesia.ai/sonic), plus network time."""
SECONDS_PER_CHAR = 0.065
"""Length of the fake's speech per character of text (about 15 characters a second)."""
TTS_REALTIME_FACTOR = 0.25
"""Audio is streamed four times faster than it plays, as a streaming TTS does."""
CHUNK_S = 0.1
FRAME_S = 0.02
SPEECH_RMS = 300.0


@dataclass
class Delay:
    """A delay drawn uniformly from [low, high), or with probability ``tail_p`` up to ``tail``."""

    low: float
    high: float
    tail_p: float
    tail: float
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    @classmethod
    def of(cls, spec: tuple[float, float, float, float], seed: int) -> Delay:
        """From a ``(low, high, tail_p, tail)`` spec."""
        return cls(*spec, rng=random.Random(seed))

    def draw(self) -> float:
        """One delay in seconds."""
        if self.rng.random() < self.tail_p:
            return self.rng.uniform(self.high, self.tail)
        return self.rng.uniform(self.low, self.high)


def voiced_seconds(pcm16: bytes, sample_rate: int) -> float:
    """Seconds from the first to the end of the last voiced 20 ms frame (0 if silent)."""
    samples = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], dtype="<i2").astype(np.float64)
    frame = max(1, int(sample_rate * FRAME_S))
    n = len(samples) // frame
    if n == 0:
        return 0.0
    frames = samples[: n * frame].reshape(n, frame)
    voiced = np.flatnonzero(np.sqrt(np.mean(frames * frames, axis=1)) > SPEECH_RMS)
    if voiced.size == 0:
        return 0.0
    return float((voiced[-1] + 1 - voiced[0]) * FRAME_S)


def buzz(seconds: float, sample_rate: int) -> bytes:
    """A voice-like sound (a 140 Hz buzz with syllable-rate swells), 16-bit PCM."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = np.sin(2 * np.pi * 140 * t) + 0.5 * np.sin(2 * np.pi * 280 * t)
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return (tone * envelope * 6000).astype("<i2").tobytes()


class FakeCartesia(LoopbackServer):
    """Cartesia's STT and TTS WebSockets on ``host`` (loopback by default) and a free port.

    Example::

        async with FakeCartesia() as cartesia:
            cartesia.expect({"What are your opening hours?": 1.6})
            env = {"CARTESIA_BASE_URL": cartesia.ws_origin, "CARTESIA_API_KEY": "x"}
    """

    def __init__(self, *, host: str = "127.0.0.1", seed: int = 7) -> None:
        """Prepare (nothing listens until :meth:`start`)."""
        self.host = host
        self.stt_delay = Delay.of(STT_DELAY_S, seed)
        self.tts_first_byte = Delay.of(TTS_FIRST_BYTE_S, seed + 1)
        self.phrases: dict[str, float] = {}
        self.transcripts = 0
        """Final transcripts sent."""
        self.syntheses = 0
        """TTS contexts answered."""

    @property
    def ws_origin(self) -> str:
        """``ws://host:port``: the value for ``CARTESIA_BASE_URL``."""
        return f"ws://{self.host}:{self.port}"

    def expect(self, phrases: Mapping[str, float]) -> None:
        """The phrases callers say, each with its voiced length in seconds."""
        self.phrases = dict(phrases)

    def routes(self, app: web.Application) -> None:
        """Cartesia's STT and TTS WebSockets."""
        app.router.add_get("/stt/websocket", self._stt)
        app.router.add_get("/tts/websocket", self._tts)

    def _phrase_for(self, seconds: float) -> str:
        if not self.phrases:
            return "hello"
        return min(self.phrases, key=lambda p: abs(self.phrases[p] - seconds))

    # Speech to text

    async def _stt(self, request: web.Request) -> web.StreamResponse:
        if not request.headers.get("X-API-Key"):
            return web.json_response({"error": "missing X-API-Key"}, status=401)
        try:
            rate = int(request.query.get("sample_rate", "16000"))
        except ValueError:
            return web.json_response({"error": "bad sample_rate"}, status=400)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        audio = bytearray()
        pending: set[asyncio.Task[None]] = set()
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                audio += msg.data
            elif msg.type == WSMsgType.TEXT and msg.data == "finalize":
                seconds, audio = voiced_seconds(bytes(audio), rate), bytearray()
                task = asyncio.create_task(self._final(ws, seconds))
                pending.add(task)
                task.add_done_callback(pending.discard)
            elif msg.type == WSMsgType.TEXT and msg.data == "done":
                await asyncio.gather(*pending, return_exceptions=True)
                await ws.send_json({"type": "done"})
                break
        await ws.close()
        return ws

    async def _final(self, ws: web.WebSocketResponse, seconds: float) -> None:
        await asyncio.sleep(self.stt_delay.draw())
        if ws.closed:
            return
        if seconds > 0:
            text = self._phrase_for(seconds)
            self.transcripts += 1
            await ws.send_json(
                {
                    "type": "transcript",
                    "request_id": "fake",
                    "is_final": True,
                    "text": text,
                    "duration": round(seconds, 2),
                    "language": "en",
                }
            )
        await ws.send_json({"type": "flush_done", "request_id": "fake"})

    # Text to speech

    async def _tts(self, request: web.Request) -> web.StreamResponse:
        if not request.headers.get("X-API-Key"):
            return web.json_response({"error": "missing X-API-Key"}, status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        contexts: dict[str, _Context] = {}
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                body: dict[str, Any] = json.loads(msg.data)
                context_id = str(body["context_id"])
            except (ValueError, KeyError, TypeError):
                await ws.send_json({"type": "error", "error": "bad message", "done": True})
                continue
            if body.get("cancel"):
                ctx = contexts.pop(context_id, None)
                if ctx is not None:
                    ctx.task.cancel()
                continue
            ctx = contexts.get(context_id)
            if ctx is None:
                rate = int(body.get("output_format", {}).get("sample_rate") or 16000)
                ctx = _Context(rate, asyncio.Queue(), self.tts_first_byte.draw())
                ctx.task = asyncio.create_task(self._speak(ws, context_id, ctx))
                contexts[context_id] = ctx
                self.syntheses += 1
            ctx.queue.put_nowait(str(body.get("transcript", "")))
            if not body.get("continue", True):
                ctx.queue.put_nowait(None)
        for ctx in contexts.values():
            ctx.task.cancel()
        return ws

    async def _speak(self, ws: web.WebSocketResponse, context_id: str, ctx: _Context) -> None:
        await asyncio.sleep(ctx.first_byte_s)
        played = 0.0
        while (text := await ctx.queue.get()) is not None:
            words = text.split()
            if not words:
                continue
            seconds = max(0.3, len(text) * SECONDS_PER_CHAR)
            step = seconds / len(words)
            await ws.send_json(
                {
                    "type": "timestamps",
                    "context_id": context_id,
                    "word_timestamps": {
                        "words": words,
                        "start": [played + i * step for i in range(len(words))],
                        "end": [played + (i + 1) * step for i in range(len(words))],
                    },
                }
            )
            pcm = buzz(seconds, ctx.rate)
            chunk = int(CHUNK_S * ctx.rate) * 2
            for i in range(0, len(pcm), chunk):
                if ws.closed:
                    return
                data = base64.b64encode(pcm[i : i + chunk]).decode()
                await ws.send_json(
                    {"type": "chunk", "context_id": context_id, "data": data, "done": False}
                )
                await asyncio.sleep(CHUNK_S * TTS_REALTIME_FACTOR)
            played += seconds
        if not ws.closed:
            await ws.send_json({"type": "done", "context_id": context_id, "done": True})


@dataclass
class _Context:
    rate: int
    queue: asyncio.Queue[str | None]
    first_byte_s: float
    task: asyncio.Task[None] = field(init=False)
