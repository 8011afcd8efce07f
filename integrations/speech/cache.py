"""A clause cache in front of any speech synthesizer.

An agent says many fixed lines (the greeting, FAQ answers, repair prompts).
Synthesising each clause once and replaying it afterwards takes the TTS stage
out of the caller-stop → bot-audio path for those lines. Shared by every call.
"""

from __future__ import annotations

import atexit
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator

from loguru import logger

from integrations.speech.audio import resample_pcm16
from integrations.speech.base import SpeechSynthesizer

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class CachingSynthesizer:
    """Wraps a :class:`SpeechSynthesizer`; complete clauses are kept in an LRU cache.

    Only whole syntheses are stored (an interrupted one is not), so a cached
    clause always replays completely. Thread-safe.
    """

    def __init__(self, synthesizer: SpeechSynthesizer, *, max_bytes: int = DEFAULT_MAX_BYTES):
        """Create the cache.

        Args:
            synthesizer: The engine that renders clauses not yet cached.
            max_bytes: Most audio kept; the least recently used clauses go first.
        """
        self._inner = synthesizer
        self._max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        """(Clause, sample rate) -> audio: the engine's rate, and any rate it was replayed at."""
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def sample_rate(self) -> int:
        """The wrapped engine's output rate."""
        return self._inner.sample_rate

    def cached(self, text: str, sample_rate: int) -> bytes | None:
        """The cached clause at ``sample_rate`` (no synthesis, no thread), or None.

        A replay at another rate than the engine's is resampled once and kept, so the
        calls of a phone line (8 kHz) replay the same bytes without converting them.
        """
        key = _key(text)
        with self._lock:
            audio = self._entries.get((key, sample_rate))
            source = None if audio is not None else self._entries.get((key, self.sample_rate))
            if audio is not None:
                self._entries.move_to_end((key, sample_rate))
            elif source is None:
                return None
            self.hits += 1
        if audio is None and source is not None:
            audio = resample_pcm16(source, self.sample_rate, sample_rate)
            self._store((key, sample_rate), audio)
        return audio

    def synthesize(self, text: str) -> Iterator[bytes]:
        """Replay the clause if cached, else render it (streaming) and remember it."""
        key = (_key(text), self.sample_rate)
        with self._lock:
            audio = self._entries.get(key)
            if audio is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
        if audio is not None:
            yield audio
            return
        chunks: list[bytes] = []
        for chunk in self._inner.synthesize(text):
            chunks.append(chunk)
            yield chunk
        self._store(key, b"".join(chunks))

    def warm(self, texts: Iterable[str], stop: threading.Event | None = None) -> int:
        """Render and cache each text that is not cached yet; returns how many were rendered.

        Args:
            texts: What to render.
            stop: Set it to end the warm-up after the text being rendered.
        """
        rendered = 0
        for text in texts:
            if stop is not None and stop.is_set():
                break
            key = (_key(text), self.sample_rate)
            with self._lock:
                if key in self._entries:
                    continue
            self._store(key, b"".join(self._inner.synthesize(text)))
            rendered += 1
        return rendered

    def _store(self, key: tuple[str, int], audio: bytes) -> None:
        if not audio or len(audio) > self._max_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = audio
            self._size += len(audio)
            while self._size > self._max_bytes:
                _, old = self._entries.popitem(last=False)
                self._size -= len(old)

    def __len__(self) -> int:
        return sum(rate == self.sample_rate for _, rate in self._entries)


def _key(text: str) -> str:
    return " ".join(text.split())


def warm_in_background(cache: CachingSynthesizer, texts: list[str]) -> threading.Thread:
    """Fill the cache on a daemon thread so start-up does not wait for it.

    At interpreter exit the warm-up is stopped and waited for (one clause at most): a
    daemon thread still inside onnxruntime when the interpreter finalises aborts the whole
    process ("terminate called without an active exception", exit status 134), which a
    one-off command or a test run that loads the models and ends quickly used to hit.
    """
    stop = threading.Event()

    def run() -> None:
        try:
            count = cache.warm(texts, stop)
            logger.info(f"TTS cache warmed: {count} clauses rendered, {len(cache)} cached")
        except Exception as e:  # a failed warm-up only costs latency later
            logger.warning(f"TTS cache warm-up stopped: {type(e).__name__}")

    thread = threading.Thread(target=run, name="tts-cache-warm", daemon=True)
    thread.start()

    def finish() -> None:
        stop.set()
        thread.join()

    atexit.register(finish)
    return thread
