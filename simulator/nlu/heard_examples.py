"""The agent's examples as the recogniser prints them: a candidate NLU training set (tooling).

Callers' words reach the classifier through the phone line and the embedded recogniser,
which drops, merges and mishears words ("whitening" -> "widening", "Saturdays" ->
"saderties", "Hi," -> "Bye."). The agent file's examples are written words. Here each
example is spoken by training voices (the product's own Piper voice, ``piper[@SCALE]``,
and the simulator's flite and espeak-ng voices; never the understanding bench's report
voices), passed through the phone channel (8 kHz, mu-law) and transcribed by the embedded
recogniser; a transcript that differs from the written example can train as one more
example of its intent (``EmbeddingIntentClassifier.train(..., heard=...)``).

``callagent nlu understanding --heard --train-voices kal,espeak:en-us`` measures it. It
did not help (README, "How a turn is understood"), so the agent does not train on heard
examples; this stays test tooling for the next attempt. Hearing 385 examples takes a
few minutes per voice: every transcript is kept with its confidence in
``<cache dir>/heard/``, one file per voice under a hash of the examples, the voice and the
recogniser, so which ones train (:class:`HeardFilter`) can change without hearing again.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from loguru import logger

from integrations.nlu.augment import has_content
from integrations.nlu.normalise import normalise
from integrations.speech.audio import PHONE_SAMPLE_RATE, phone_channel
from integrations.speech.nbest import NBestRecognizer

HEARD_FORMAT = 1
"""Part of the cache key: bump when the way an example is heard changes."""
LEAD_S, TRAIL_S = 0.1, 0.2
"""Silence around a clip, as the call's STT pads a segment."""
REPORT_VOICES = frozenset({"slt", "espeak:en-gb-x-rp"})
"""The understanding bench's report voices: never training voices."""


class Speaker(Protocol):
    """A training voice: speaks a text as 16-bit mono PCM."""

    @property
    def name(self) -> str:
        """Stable name (part of the cache key)."""
        ...

    def speak(self, text: str) -> tuple[bytes, int]:
        """The text spoken: ``(pcm16, sample_rate)``."""
        ...


@dataclass(frozen=True)
class HeardExample:
    """One example as one voice's speech was heard.

    Parameters:
        example: The written example.
        intent: Its intent.
        voice: The speaker's name.
        heard: The recogniser's best reading ("" when nothing was heard).
        confidence: The recogniser's confidence in it (0 when nothing was heard).
    """

    example: str
    intent: str
    voice: str
    heard: str
    confidence: float


@dataclass(frozen=True)
class HeardFilter:
    """Which heard transcripts train the classifier.

    Parameters:
        min_confidence: Transcripts the recogniser was less sure of are left out (garbled
            words teach the classifier noise).
    """

    min_confidence: float = 0.0

    def pairs(self, heard: Sequence[HeardExample]) -> list[tuple[str, str]]:
        """``(text, intent)`` training pairs: transcripts that differ from their example.

        Empty transcripts, ones without a content word, ones below the confidence floor
        and ones heard for two intents are dropped; each text is kept once.
        """
        labels: dict[str, set[str]] = {}
        for h in heard:
            text = normalise(h.heard)
            if (
                text
                and has_content(text)
                and h.confidence >= self.min_confidence
                and text != normalise(h.example)
            ):
                labels.setdefault(text, set()).add(h.intent)
        return [(text, next(iter(i))) for text, i in labels.items() if len(i) == 1]


class PiperSpeaker:
    """The product's own Piper voice as a training voice, at a speaking rate.

    ``piper`` is the voice as shipped; ``piper@0.85`` speaks 15 % faster (Piper's
    ``length_scale`` 0.85).
    """

    def __init__(self, spec: str = "piper") -> None:
        """Load the voice (``spec``: ``piper`` or ``piper@LENGTH_SCALE``)."""
        from integrations.speech.piper import PiperSynthesizer

        _, _, scale = spec.partition("@")
        self._name = spec
        self._synthesizer = PiperSynthesizer(length_scale=float(scale) if scale else None)

    @property
    def name(self) -> str:
        """The spec it was made from."""
        return self._name

    def speak(self, text: str) -> tuple[bytes, int]:
        """The text in the Piper voice."""
        return b"".join(self._synthesizer.synthesize(text)), self._synthesizer.sample_rate


def recognizer_fingerprint(recognizer: object) -> str:
    """A description of the recogniser that changes when its transcripts may change."""
    parts = [
        type(recognizer).__name__,
        str(getattr(recognizer, "model_dir", "")),
        f"beam={getattr(recognizer, 'beam_width', 1)}",
        f"lm={getattr(recognizer, 'lm_weight', 0.0)}",
    ]
    return ";".join(parts)


def heard_path(
    cache_dir: Path,
    examples: Sequence[tuple[str, str]],
    voices: Sequence[str],
    recognizer: str,
) -> Path:
    """Where the heard examples of these examples, voices and recogniser are kept."""
    digest = hashlib.sha256()
    digest.update(f"format={HEARD_FORMAT};recognizer={recognizer};".encode())
    digest.update(json.dumps(sorted(voices)).encode())
    digest.update(json.dumps(sorted(examples)).encode())
    return cache_dir / "heard" / f"heard-{digest.hexdigest()[:20]}.json"


def hear_examples(
    examples: Sequence[tuple[str, str]],
    speakers: Sequence[Speaker],
    recognizer: NBestRecognizer,
    progress: Callable[[int, int], None] | None = None,
) -> list[HeardExample]:
    """Speak every example in every voice through the phone channel and transcribe it."""
    lead = bytes(int(LEAD_S * PHONE_SAMPLE_RATE) * 2)
    trail = bytes(int(TRAIL_S * PHONE_SAMPLE_RATE) * 2)
    out: list[HeardExample] = []
    total = len(examples) * len(speakers)
    for speaker in speakers:
        for text, intent in examples:
            pcm, rate = speaker.speak(text)
            line = phone_channel(pcm, rate)
            heard = recognizer.recognize(lead + line + trail, PHONE_SAMPLE_RATE)
            out.append(
                HeardExample(text, intent, speaker.name, heard.text, round(heard.confidence, 4))
            )
            if progress is not None:
                progress(len(out), total)
    return out


def save_heard(path: Path, heard: Sequence[HeardExample]) -> None:
    """Write heard examples (atomically: another run may be reading the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps([asdict(h) for h in heard], indent=0), "utf-8")
    partial.replace(path)


def load_heard(path: Path) -> list[HeardExample] | None:
    """The heard examples kept at ``path`` (None: not heard yet, or unreadable)."""
    if not path.exists():
        return None
    try:
        return [HeardExample(**row) for row in json.loads(path.read_text("utf-8"))]
    except (OSError, ValueError, TypeError) as e:
        logger.warning(f"heard examples unreadable ({type(e).__name__}); ignored")
        return None


def print_progress(done: int, total: int) -> None:
    """A one-line progress count on stderr (commands)."""
    print(f"\rheard {done}/{total} examples", end="", file=sys.stderr, flush=True)
    if done == total:
        print(file=sys.stderr)


class SimulatorSpeaker:
    """A simulator caller voice (``kal``, ``espeak:en-us@1.2``) as a training voice."""

    def __init__(self, spec: str) -> None:
        """Check the voice (:func:`simulator.understanding.voices.parse_voice`)."""
        from simulator.understanding.voices import parse_voice

        parse_voice(spec)
        self._name = spec

    @property
    def name(self) -> str:
        """The voice spec."""
        return self._name

    def speak(self, text: str) -> tuple[bytes, int]:
        """The text as a caller in this voice says it (8 kHz)."""
        from simulator.understanding.voices import spoken

        return spoken(text, self._name), PHONE_SAMPLE_RATE


def speakers(specs: Sequence[str]) -> list[Speaker]:
    """Training voices from their specs (``piper[@SCALE]`` or a simulator voice).

    Raises:
        ValueError: a report voice, or an unknown voice.
    """
    out: list[Speaker] = []
    for spec in specs:
        if spec.partition("@")[0] in REPORT_VOICES:
            raise ValueError(f"{spec!r} is a report voice of the understanding bench")
        out.append(PiperSpeaker(spec) if spec.startswith("piper") else SimulatorSpeaker(spec))
    return out


def heard_examples(
    examples: Sequence[tuple[str, str]], voices: Sequence[str], cache_dir: Path
) -> list[HeardExample]:
    """The examples heard in ``voices`` (from the cache, or heard now and cached)."""
    from simulator.understanding.noise_path import embedded_recognizer

    recognizer = embedded_recognizer()
    out: list[HeardExample] = []
    for voice in voices:  # one file per voice: adding a voice hears only that one
        path = heard_path(cache_dir, examples, [voice], recognizer_fingerprint(recognizer))
        heard = load_heard(path)
        if heard is None:
            heard = hear_examples(examples, speakers([voice]), recognizer, print_progress)
            save_heard(path, heard)
        out.extend(heard)
    return out
