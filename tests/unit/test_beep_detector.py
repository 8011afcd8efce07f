"""The beep detector hears answering-machine tones, and not speech or hold music."""

import shutil

import numpy as np
import pytest

from integrations.hold_audio import hold_music_pcm
from integrations.speech.beep import Beep, BeepDetector
from simulator.bench.amd_answers import add_noise, tone
from simulator.voices.caller_voice import silence, synthesize
from simulator.voices.noise import NoiseSpec, normalize_active


def detect(pcm: bytes, sample_rate: int = 8000, chunk_ms: int = 20) -> list[Beep]:
    detector = BeepDetector(sample_rate)
    size = sample_rate * chunk_ms // 1000 * 2
    beeps: list[Beep] = []
    for i in range(0, len(pcm), size):
        beeps += detector.feed(pcm[i : i + size])
    return beeps + detector.flush()


@pytest.mark.parametrize("freq", [440.0, 850.0, 1000.0, 1400.0, 2000.0])
@pytest.mark.parametrize("secs", [0.2, 0.5, 1.2])
def test_a_tone_is_a_beep_with_its_times(freq: float, secs: float) -> None:
    beeps = detect(silence(0.5) + tone(freq, secs) + silence(0.5))

    assert len(beeps) == 1
    assert beeps[0].start_s == pytest.approx(0.5, abs=0.05)
    assert beeps[0].end_s == pytest.approx(0.5 + secs, abs=0.05)
    assert beeps[0].freq_hz == pytest.approx(freq, abs=10)


def test_16_khz_audio_and_odd_chunk_sizes() -> None:
    pcm = silence(0.3, 16000) + tone(1000.0, 0.4, sample_rate=16000) + silence(0.3, 16000)

    beeps = detect(pcm, 16000, chunk_ms=7)

    assert [round(b.freq_hz, -1) for b in beeps] == [1000.0]


def test_a_blip_is_not_a_beep() -> None:
    assert detect(silence(0.5) + tone(1000.0, 0.1) + silence(0.5)) == []


def test_tones_outside_the_band_are_not_beeps() -> None:
    assert detect(tone(200.0, 0.5) + silence(0.2) + tone(3500.0, 0.5)) == []


def test_the_tone_being_heard_is_reported_before_it_ends() -> None:
    detector = BeepDetector(8000)
    detector.feed(silence(0.2) + tone(1000.0, 0.4))

    assert detector.in_tone
    assert detector.last_tonal_s is not None


@pytest.mark.parametrize(("kind", "snr_db"), [("white", 20.0), ("white", 10.0), ("pink", 10.0)])
def test_a_beep_in_noise(kind: str, snr_db: float) -> None:
    beep = normalize_active(silence(0.4) + tone(1000.0, 0.5) + silence(0.4))

    beeps = detect(add_noise(beep, NoiseSpec(kind, snr_db, seed=3)))

    assert len(beeps) == 1
    assert beeps[0].duration_s == pytest.approx(0.5, abs=0.1)


def test_hold_music_is_not_a_beep() -> None:
    assert detect(hold_music_pcm(8000) * 2) == []


def test_white_noise_alone_is_not_a_beep() -> None:
    noise = (np.random.default_rng(1).standard_normal(8000 * 3) * 3000).astype("<i2").tobytes()

    assert detect(noise) == []


@pytest.mark.skipif(not (shutil.which("flite") and shutil.which("espeak-ng")), reason="voices")
@pytest.mark.parametrize(
    "voice", ["slt", "rms", "awb", "kal", "espeak:en-us", "espeak:en-us+f3", "espeak:en-gb"]
)
def test_speech_is_not_a_beep(voice: str) -> None:
    texts = [
        "Hello?",
        "Yeah, hello, who's this?",
        "Hi, you've reached Maria. Please leave a message after the beep.",
        "Ooooh. Aaaah. Eeeee. Noooo. Moooo.",
    ]
    for text in texts:
        for rate in (0.6, 1.0):
            assert detect(synthesize(text, voice=voice, rate=rate)) == [], (voice, text, rate)
