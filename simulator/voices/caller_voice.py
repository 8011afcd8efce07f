"""A simulated caller's voice: local synthetic speech unlike the bot's (Piper "joe").

Uses Debian's ``flite`` (voices ``slt`` (default, female), ``rms``, ``awb``, ``kal``,
``kal16``; about 8 % WER through the embedded ASR after the phone channel), or
``espeak-ng`` (``espeak:<voice>``, e.g. ``espeak:en-us+f3``; about 20 %). Clips are
16-bit mono PCM, peak-normalised, cached by text, voice and rate under a temp dir.

Used by the tests, ``callagent bench`` and ``callagent simulate``.
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

from integrations.speech.audio import PHONE_SAMPLE_RATE

DEFAULT_VOICE = "slt"
FLITE_VOICES = ("slt", "rms", "awb", "kal", "kal16", "awb_time")
ESPEAK_PREFIX = "espeak:"
ESPEAK_WPM = 150
_PEAK = 0.7 * 32767
_CACHE_VERSION = "2"


class CallerVoiceUnavailable(RuntimeError):
    """Neither flite nor espeak-ng is installed (``apt-get install flite``)."""


def engine() -> str | None:
    """The default synthesiser: ``flite``, ``espeak-ng`` or None."""
    for name in ("flite", "espeak-ng"):
        if shutil.which(name):
            return name
    return None


def check_voice(voice: str) -> str | None:
    """Why ``voice`` cannot be used (None when it can).

    A voice is a flite voice name or ``espeak:<espeak-ng voice>``.
    """
    if voice.startswith(ESPEAK_PREFIX):
        if not voice[len(ESPEAK_PREFIX) :].strip():
            return "an espeak voice needs a name, e.g. espeak:en-us+f3"
        return None
    if voice not in FLITE_VOICES:
        return f"unknown voice {voice!r}: use one of {', '.join(FLITE_VOICES)} or espeak:<voice>"
    return None


def cache_dir() -> Path:
    """Where clips are cached (``$CALLAGENT_TEST_VOICE_CACHE`` or the temp dir)."""
    root = os.environ.get("CALLAGENT_TEST_VOICE_CACHE")
    path = Path(root) if root else Path(tempfile.gettempdir()) / "callagent-caller-voice"
    path.mkdir(parents=True, exist_ok=True)
    return path


def synthesize(
    text: str,
    *,
    voice: str = DEFAULT_VOICE,
    rate: float = 1.0,
    sample_rate: int = PHONE_SAMPLE_RATE,
) -> bytes:
    """Speak ``text`` as the caller: 16-bit mono PCM at ``sample_rate`` (cached).

    Args:
        text: What the caller says.
        voice: A flite voice (``slt``, ``rms``, ``awb``, ``kal``) or ``espeak:<voice>``.
            Without flite, flite voices fall back to espeak-ng ``en-us``.
        rate: Speaking rate relative to the voice's normal pace (1.25 = 25 % faster).
        sample_rate: Output rate (8000 for the phone).

    Raises:
        CallerVoiceUnavailable: no synthesiser installed.
        ValueError: an unknown voice or a rate outside 0.5-2.
    """
    problem = check_voice(voice)
    if problem:
        raise ValueError(problem)
    if not 0.5 <= rate <= 2.0:
        raise ValueError("rate must be between 0.5 and 2")
    tool, tool_voice = _resolve(voice)
    key = hashlib.sha256(
        f"{_CACHE_VERSION}|{tool}|{tool_voice}|{rate:.3f}|{sample_rate}|{text}".encode()
    ).hexdigest()[:24]
    cached = cache_dir() / f"{key}.pcm"
    if cached.exists():
        return cached.read_bytes()
    pcm = _render(tool, text, tool_voice, rate, sample_rate)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(pcm)
    tmp.replace(cached)
    return pcm


def silence(seconds: float, sample_rate: int = PHONE_SAMPLE_RATE) -> bytes:
    """``seconds`` of 16-bit PCM silence."""
    return b"\x00\x00" * int(seconds * sample_rate)


def _resolve(voice: str) -> tuple[str, str]:
    if voice.startswith(ESPEAK_PREFIX):
        if not shutil.which("espeak-ng"):
            raise CallerVoiceUnavailable("install Debian's espeak-ng (apt-get install espeak-ng)")
        return "espeak-ng", voice[len(ESPEAK_PREFIX) :]
    if shutil.which("flite"):
        return "flite", voice
    if shutil.which("espeak-ng"):
        return "espeak-ng", "en-us"
    raise CallerVoiceUnavailable("install Debian's flite (apt-get install -y flite)")


def _render(tool: str, text: str, voice: str, rate: float, sample_rate: int) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "caller.wav"
        if tool == "flite":
            cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={1 / rate:.3f}"]
            cmd += ["-t", text, "-o", str(wav)]
        else:
            cmd = ["espeak-ng", "-v", voice, "-s", str(round(ESPEAK_WPM * rate)), "-w", str(wav)]
            cmd.append(text)
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        with wave.open(str(wav), "rb") as f:
            rate_in = f.getframerate()
            channels = f.getnchannels()
            frames = f.readframes(f.getnframes())
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float32)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    if rate_in != sample_rate:
        samples = soxr.resample(samples, rate_in, sample_rate, quality="HQ")
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > 0:
        samples = samples * (_PEAK / peak)
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()
