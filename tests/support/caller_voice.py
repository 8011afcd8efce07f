"""Caller speech for phone tests: a local synthetic voice unlike the bot's (Piper "joe").

Uses Debian's ``flite`` (female "slt" voice by default; about 8 % WER through the
embedded ASR after the phone channel), else ``espeak-ng`` (about 20 %). Clips are
16-bit 8 kHz mono PCM, peak-normalised, and cached by text and voice under a temp dir.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
import soxr

SAMPLE_RATE = 8000
DEFAULT_VOICE = "slt"
_PEAK = 0.7 * 32767
_CACHE_VERSION = "1"


class CallerVoiceUnavailable(RuntimeError):
    """Neither flite nor espeak-ng is installed (``apt-get install flite``)."""


def engine() -> str | None:
    """The synthesiser in use: ``flite``, ``espeak-ng`` or None."""
    for name in ("flite", "espeak-ng"):
        if shutil.which(name):
            return name
    return None


def cache_dir() -> Path:
    """Where clips are cached (``$CALLAGENT_TEST_VOICE_CACHE`` or the temp dir)."""
    root = os.environ.get("CALLAGENT_TEST_VOICE_CACHE")
    path = Path(root) if root else Path(tempfile.gettempdir()) / "callagent-caller-voice"
    path.mkdir(parents=True, exist_ok=True)
    return path


def synthesize(text: str, *, voice: str = DEFAULT_VOICE, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Speak ``text`` as the caller: 16-bit mono PCM at ``sample_rate`` (cached).

    Args:
        text: What the caller says.
        voice: flite voice (``slt``, ``rms``, ``awb``, ``kal``); espeak-ng uses ``en-us``.
        sample_rate: Output rate (8000 for the phone).

    Raises:
        CallerVoiceUnavailable: no synthesiser installed.
    """
    tool = engine()
    if tool is None:
        raise CallerVoiceUnavailable("install Debian's flite (apt-get install -y flite)")
    key = hashlib.sha256(
        f"{_CACHE_VERSION}|{tool}|{voice}|{sample_rate}|{text}".encode()
    ).hexdigest()[:24]
    cached = cache_dir() / f"{key}.pcm"
    if cached.exists():
        return cached.read_bytes()
    pcm = _render(tool, text, voice, sample_rate)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(pcm)
    tmp.replace(cached)
    return pcm


def silence(seconds: float, sample_rate: int = SAMPLE_RATE) -> bytes:
    """``seconds`` of 16-bit PCM silence."""
    return b"\x00\x00" * int(seconds * sample_rate)


def _render(tool: str, text: str, voice: str, sample_rate: int) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "caller.wav"
        if tool == "flite":
            cmd = ["flite", "-voice", voice, "-t", text, "-o", str(wav)]
        else:
            cmd = ["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        with wave.open(str(wav), "rb") as f:
            rate = f.getframerate()
            channels = f.getnchannels()
            frames = f.readframes(f.getnframes())
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float32)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    if rate != sample_rate:
        samples = soxr.resample(samples, rate, sample_rate, quality="HQ")
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > 0:
        samples = samples * (_PEAK / peak)
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()
