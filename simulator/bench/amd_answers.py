"""A labelled set of ways an outbound call is answered, as 8 kHz audio (``callagent bench amd``).

People pick up with short or longer hellos in several voices (flite and espeak-ng), some
in background noise; machines answer with personal and carrier voicemail greetings, with
and without a beep after them, and IVR menus. The set is deterministic: the same
``count``, ``seed`` and :class:`Phrasing` give the same answers (the synthesised speech is
cached by :mod:`simulator.voices.caller_voice`). :data:`TUNING` is the set the detector's
thresholds were tuned on; :data:`HELD_OUT` (:mod:`simulator.bench.amd_held_out`) has other
hellos, greetings, menus, voices, noises and beep tones, to measure on.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simulator.voices.caller_voice import silence, synthesize
from simulator.voices.noise import (
    BackgroundNoise,
    NoiseSpec,
    normalize_active,
    voiced_frames,
)

PERSON = "person"
MACHINE = "machine"

SHORT_HELLOS = ("Hello?", "Hello.", "Hi.", "Yes?", "Yeah?", "Hello, yes?", "Speaking.")
LONG_HELLOS = (
    "Hi, this is Maria.",
    "Yeah, hello, who's this?",
    "Hello, Maria speaking.",
    "Good morning, this is John.",
    "Hello? Yes, hi.",
    "Hi, who's calling?",
    "Hello, this is Doctor Patel's phone.",
)
PERSONAL_GREETINGS = (
    "Hi, you've reached Maria. I can't take your call right now, please leave a message "
    "after the beep.",
    "Hey, it's John. Leave me a message and I'll get back to you.",
    "Hello, you have reached the Smith residence. We're not home right now. Please leave "
    "your name and number after the tone.",
    "This is Anna. Sorry I missed your call. Leave a message and I'll call you back.",
    "Hi, you've reached Dave. I'm away from my phone, so leave a message.",
    "Hello. You've reached the voicemail of Peter Jones. Please leave a message.",
)
CARRIER_GREETINGS = (
    "The person you are calling is not available. Please leave a message after the tone.",
    "The number you have dialed is not available. At the tone, please record your message. "
    "When you have finished recording, you may hang up.",
    "Your call has been forwarded to an automatic voice message system. The person you are "
    "calling is not available. At the tone, please record your message.",
    "The subscriber you have called is not available. Please leave a message after the beep.",
)
IVR_MENUS = (
    "Thank you for calling Riverside Medical. For appointments, press 1. For billing, "
    "press 2. For all other questions, please stay on the line.",
    "Thank you for calling. Please listen carefully, as our menu options have changed. "
    "For sales, press 1. For support, press 2.",
    "Welcome to City Dental. Our office hours are Monday to Friday, eight to five. If this "
    "is an emergency, please hang up and dial 911.",
)
VOICES = (
    "slt",
    "rms",
    "awb",
    "kal",
    "espeak:en-us",
    "espeak:en-us+f3",
    "espeak:en-gb",
    "espeak:en-us+m3",
)
NOISES = (
    NoiseSpec("babble", 15.0),
    NoiseSpec("white", 20.0),
    NoiseSpec("babble", 10.0),
    NoiseSpec("pink", 15.0),
)
BEEP_HZ = (440.0, 850.0, 1000.0, 1400.0, 2000.0)


@dataclass(frozen=True)
class Phrasing:
    """What the answers of a set say, in which voices, noises and beep tones."""

    name: str
    short_hellos: Sequence[str]
    long_hellos: Sequence[str]
    personal: Sequence[str]
    carrier: Sequence[str]
    ivr: Sequence[str]
    voices: Sequence[str]
    noises: Sequence[NoiseSpec]
    beep_hz: Sequence[float]


TUNING = Phrasing(
    "tuning",
    SHORT_HELLOS,
    LONG_HELLOS,
    PERSONAL_GREETINGS,
    CARRIER_GREETINGS,
    IVR_MENUS,
    VOICES,
    NOISES,
    BEEP_HZ,
)
"""The set the detector was tuned on (``--seed 17``)."""

TAIL_SECS = 4.0
"""Quiet after the answer's last sound (a person waiting, a machine recording)."""


@dataclass(frozen=True)
class Answer:
    """One labelled answer.

    Parameters:
        name: A short unique name (``person-short-03``).
        truth: ``person`` or ``machine``.
        kind: ``short-hello``, ``long-hello``, ``personal``, ``carrier`` or ``ivr``.
        text: What is said.
        voice: Who says it.
        noise: The background noise (``babble@10dB``), or "".
        pcm: 16-bit mono PCM at 8 kHz.
        speech_end_s: Where the answer's speech ends (people: the end of their hello).
        beep_end_s: Where the beep ends (None: no beep).
    """

    name: str
    truth: str
    kind: str
    text: str
    voice: str
    noise: str
    pcm: bytes
    speech_end_s: float
    beep_end_s: float | None = None


def tone(freq_hz: float, secs: float, *, level: float = 0.3, sample_rate: int = 8000) -> bytes:
    """A sine tone (a beep) as 16-bit PCM, with 5 ms ramps."""
    n = int(secs * sample_rate)
    t = np.arange(n) / sample_rate
    ramp = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.005 * sample_rate))
    samples = np.sin(2 * np.pi * freq_hz * t) * ramp * level * 32767
    return samples.astype("<i2").tobytes()


def add_noise(pcm: bytes, spec: NoiseSpec) -> bytes:
    """``pcm`` (speech at the simulator's active level) with background noise under it."""
    noise = BackgroundNoise.for_speech(spec)
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    ticks = (len(samples) + 159) // 160
    bed = np.frombuffer(b"".join(noise.chunk(i) for i in range(ticks)), dtype="<i2")
    mixed = samples + bed[: len(samples)].astype(np.float64)
    return np.clip(np.round(mixed), -32768, 32767).astype("<i2").tobytes()


def speech_end_s(pcm: bytes) -> float:
    """Where the voiced part of a clip ends (seconds)."""
    mask = voiced_frames(np.frombuffer(pcm, dtype="<i2"))
    voiced = np.flatnonzero(mask)
    return float(voiced[-1] + 1) * 0.02 if voiced.size else 0.0


def generate(count: int = 210, *, seed: int = 17, phrasing: Phrasing = TUNING) -> list[Answer]:
    """``count`` answers (about half people, half machines), the same for the same seed."""
    rng = random.Random(seed)
    people = count // 2
    answers = [_person(i, rng, phrasing) for i in range(people)]
    answers += [_machine(i, rng, phrasing) for i in range(count - people)]
    return answers


def _person(i: int, rng: random.Random, phrasing: Phrasing) -> Answer:
    short = i % 2 == 0
    texts = phrasing.short_hellos if short else phrasing.long_hellos
    text = texts[(i // 2) % len(texts)]
    voice = phrasing.voices[i % len(phrasing.voices)]
    rate = rng.choice((0.9, 1.0, 1.1))
    clip = normalize_active(synthesize(text, voice=voice, rate=rate))
    lead = rng.uniform(0.2, 0.8)
    pcm = silence(lead) + clip + silence(TAIL_SECS)
    noises = phrasing.noises
    spec = noises[(i // 3) % len(noises)] if i % 3 == 2 else None
    if spec is not None:
        pcm = add_noise(pcm, NoiseSpec(spec.kind, spec.snr_db, seed=i))
    kind = "short-hello" if short else "long-hello"
    return Answer(
        name=f"person-{kind}-{i:03d}",
        truth=PERSON,
        kind=kind,
        text=text,
        voice=voice,
        noise=f"{spec.kind}@{spec.snr_db:g}dB" if spec else "",
        pcm=pcm,
        speech_end_s=round(lead + speech_end_s(clip), 3),
    )


def _machine(i: int, rng: random.Random, phrasing: Phrasing) -> Answer:
    kind = ("personal", "carrier", "personal", "ivr", "carrier")[i % 5]
    texts = {"personal": phrasing.personal, "carrier": phrasing.carrier, "ivr": phrasing.ivr}
    text = texts[kind][(i // 5) % len(texts[kind])]
    voice = phrasing.voices[(i * 3) % len(phrasing.voices)]
    clip = normalize_active(synthesize(text, voice=voice, rate=rng.choice((0.95, 1.0, 1.1))))
    lead = rng.uniform(0.1, 0.6)
    pcm = silence(lead) + clip
    end = lead + speech_end_s(clip)
    beep_end = None
    if kind != "ivr" and i % 2 == 0:
        gap = rng.uniform(0.2, 0.8)
        length = rng.uniform(0.25, 1.0)
        beep = tone(rng.choice(phrasing.beep_hz), length)
        beep_end = round(len(pcm) / 16000 + gap + length, 3)
        pcm += silence(gap) + beep
    pcm += silence(TAIL_SECS)
    if i % 4 == 3:
        pcm = add_noise(pcm, NoiseSpec("white", 30.0, seed=1000 + i))  # a hissing line
    return Answer(
        name=f"machine-{kind}-{i:03d}",
        truth=MACHINE,
        kind=kind,
        text=text,
        voice=voice,
        noise="white@30dB" if i % 4 == 3 else "",
        pcm=pcm,
        speech_end_s=round(end, 3),
        beep_end_s=beep_end,
    )
