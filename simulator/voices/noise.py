"""Background noise at the caller's end: white, pink or babble, mixed at an exact SNR.

No noise corpus ships in any package, so noise is synthesised: white and pink noise
with numpy, babble by mixing 7 espeak-ng talkers (different voices, pitches and rates)
reading Harvard sentences. A noise bed is a loop of unit-RMS float samples, cached on
disk; :class:`BackgroundNoise` plays it at the gain that puts it ``snr_db`` below the
caller's active speech level:

    gain = speech RMS / (noise RMS * 10^(SNR/20))

where the speech RMS is taken over the voiced 20 ms frames only (silences between
words do not dilute it). Caller clips are first normalised to one active level
(:func:`normalize_active`), so every utterance of a call is at exactly that SNR.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from integrations.speech.audio import PHONE_SAMPLE_RATE
from simulator.voices.caller_voice import cache_dir

FRAME_SAMPLES = PHONE_SAMPLE_RATE // 50  # 20 ms
NOISE_KINDS = ("white", "pink", "babble")
SPEECH_LEVEL_RMS = 2600.0
"""Active speech level caller clips are normalised to (about -22 dBFS)."""
VOICED_FLOOR_RMS = 300.0
"""20 ms frames quieter than this never count as voiced (about -40 dBFS)."""
VOICED_RELATIVE = 0.1
"""...nor frames quieter than this fraction of the clip's loudest frame."""
BED_SECONDS = 30.0
BABBLE_TALKERS = 7
_BED_VERSION = "1"

HARVARD_SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.",
    "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.",
    "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.",
    "Read verse out loud for pleasure.",
)
_BABBLE_VOICES = (
    ("en-us", 40, 165),
    ("en-gb", 55, 150),
    ("en-us+f3", 60, 170),
    ("en-gb-x-rp+f2", 70, 155),
    ("en-029", 35, 160),
    ("en-gb-scotland+m3", 45, 145),
    ("en-us+f4", 65, 175),
    ("en-gb-x-gbclan+m2", 30, 150),
)


class NoiseUnavailable(RuntimeError):
    """Babble needs espeak-ng (``apt-get install espeak-ng``)."""


@dataclass(frozen=True)
class NoiseSpec:
    """Background noise for a call.

    Parameters:
        kind: ``white``, ``pink`` or ``babble``.
        snr_db: Caller's active speech level over the noise level, in dB.
        seed: Which noise (the same seed gives the same noise).
    """

    kind: str
    snr_db: float
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in NOISE_KINDS:
            raise ValueError(f"noise type must be one of {', '.join(NOISE_KINDS)}")
        if not -20.0 <= self.snr_db <= 60.0:
            raise ValueError("snr_db must be between -20 and 60")


def frame_rms(pcm: np.ndarray) -> np.ndarray:
    """RMS of each whole 20 ms frame of int16/float samples."""
    n = len(pcm) // FRAME_SAMPLES
    frames = pcm[: n * FRAME_SAMPLES].astype(np.float64).reshape(n, FRAME_SAMPLES)
    return np.sqrt(np.mean(frames * frames, axis=1)) if n else np.zeros(0)


def voiced_frames(pcm: np.ndarray) -> np.ndarray:
    """Mask of the 20 ms frames that carry speech (by level)."""
    levels = frame_rms(pcm)
    if levels.size == 0:
        return levels.astype(bool)
    return levels > max(VOICED_FLOOR_RMS, VOICED_RELATIVE * float(levels.max()))


def active_rms(pcm16: bytes | np.ndarray) -> float:
    """RMS over the voiced 20 ms frames of a clip (0 when nothing is voiced)."""
    samples = _samples(pcm16)
    mask = voiced_frames(samples)
    if not mask.any():
        return 0.0
    n = len(mask)
    frames = samples[: n * FRAME_SAMPLES].astype(np.float64).reshape(n, FRAME_SAMPLES)[mask]
    return float(np.sqrt(np.mean(frames * frames)))


def normalize_active(pcm16: bytes, level_rms: float = SPEECH_LEVEL_RMS) -> bytes:
    """Scale a clip so its active speech RMS is ``level_rms`` (peaks limited to full scale).

    A clip whose peaks would clip is scaled less; its actual level is what
    :func:`active_rms` reports.
    """
    samples = _samples(pcm16).astype(np.float64)
    level = active_rms(samples)
    if level <= 0:
        return pcm16
    gain = level_rms / level
    peak = float(np.max(np.abs(samples))) or 1.0
    gain = min(gain, 32000.0 / peak)
    return np.clip(np.round(samples * gain), -32768, 32767).astype("<i2").tobytes()


def noise_gain(speech_rms: float, noise_rms: float, snr_db: float) -> float:
    """The gain putting noise of ``noise_rms`` exactly ``snr_db`` below ``speech_rms``."""
    if noise_rms <= 0:
        return 0.0
    return speech_rms / (noise_rms * 10 ** (snr_db / 20.0))


def snr_db(speech: bytes | np.ndarray, noise: bytes | np.ndarray) -> float:
    """Active speech level of ``speech`` over the RMS of ``noise``, in dB."""
    n = _samples(noise).astype(np.float64)
    noise_rms = float(np.sqrt(np.mean(n * n))) if n.size else 0.0
    speech_rms = active_rms(speech)
    if noise_rms <= 0 or speech_rms <= 0:
        return float("inf")
    return 20.0 * np.log10(speech_rms / noise_rms)


def noise_bed(kind: str, seed: int = 0, seconds: float = BED_SECONDS) -> np.ndarray:
    """A loop of unit-RMS noise (float32, 8 kHz), cached on disk.

    Raises:
        NoiseUnavailable: babble without espeak-ng.
        ValueError: an unknown kind.
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise type must be one of {', '.join(NOISE_KINDS)}")
    key = hashlib.sha256(f"{_BED_VERSION}|{kind}|{seed}|{seconds}".encode()).hexdigest()[:16]
    path = cache_dir() / f"noise-{kind}-{key}.npy"
    if path.exists():
        return np.load(path)
    n = int(seconds * PHONE_SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    if kind == "white":
        bed = rng.standard_normal(n)
    elif kind == "pink":
        bed = _pink(n, rng)
    else:
        bed = _babble(n, seed)
    bed = bed.astype(np.float64)
    bed /= float(np.sqrt(np.mean(bed * bed))) or 1.0
    bed32 = bed.astype(np.float32)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, bed32)
    tmp.replace(path)
    return bed32


class BackgroundNoise:
    """Plays a noise bed, looped, at a fixed level: one 20 ms chunk per tick."""

    def __init__(self, bed: np.ndarray, rms_level: float, *, offset: int = 0):
        """Play ``bed`` (unit RMS) at ``rms_level`` (16-bit scale), from sample ``offset``."""
        self.rms_level = rms_level
        self._bed = bed.astype(np.float64) * rms_level
        self._offset = offset

    @classmethod
    def for_speech(cls, spec: NoiseSpec, speech_rms: float = SPEECH_LEVEL_RMS) -> BackgroundNoise:
        """Noise ``spec.snr_db`` below speech at ``speech_rms`` (active level)."""
        bed = noise_bed(spec.kind, spec.seed)
        level = speech_rms / 10 ** (spec.snr_db / 20.0)
        return cls(bed, level, offset=(spec.seed * 7919) % len(bed))

    def chunk(self, tick: int) -> bytes:
        """The 20 ms of noise (16-bit PCM) for a tick."""
        start = (self._offset + tick * FRAME_SAMPLES) % len(self._bed)
        idx = (np.arange(FRAME_SAMPLES) + start) % len(self._bed)
        return np.clip(np.round(self._bed[idx]), -32768, 32767).astype("<i2").tobytes()

    def __call__(self, tick: int) -> bytes:
        """Same as :meth:`chunk` (the emulator's background callable)."""
        return self.chunk(tick)


def _samples(pcm: bytes | np.ndarray) -> np.ndarray:
    if isinstance(pcm, np.ndarray):
        return pcm
    usable = len(pcm) - len(pcm) % 2
    return np.frombuffer(pcm[:usable], dtype="<i2")


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise: white noise shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / PHONE_SAMPLE_RATE)
    f[0] = f[1]
    return np.fft.irfft(spectrum / np.sqrt(f), n)


def _babble(n: int, seed: int) -> np.ndarray:
    if not shutil.which("espeak-ng"):
        raise NoiseUnavailable("babble noise needs espeak-ng (apt-get install espeak-ng)")
    import soxr

    rng = random.Random(seed)
    out = np.zeros(n)
    voices = list(_BABBLE_VOICES)
    rng.shuffle(voices)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (voice, pitch, wpm) in enumerate(voices[:BABBLE_TALKERS]):
            sentences = list(HARVARD_SENTENCES)
            rng.shuffle(sentences)
            wav = Path(tmp) / f"talker{i}.wav"
            cmd = ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(wpm), "-g", "4"]
            subprocess.run(
                [*cmd, "-w", str(wav), " ".join(sentences)],
                check=True,
                capture_output=True,
                timeout=120,
            )
            with wave.open(str(wav), "rb") as f:
                rate = f.getframerate()
                talker = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(np.float32)
            talker = soxr.resample(talker, rate, PHONE_SAMPLE_RATE).astype(np.float64)
            level = active_rms(talker) or 1.0
            talker = np.resize(talker / level, n)  # loops the talker if short
            out += np.roll(talker, rng.randrange(n))
    return out
