"""Word error rate of the embedded recogniser on an agent's own domain, over the phone line.

Local caller voices (flite, espeak-ng) speak the agent's intent examples and
knowledge-base questions plus caller phrasings written here (fillers, two sentences,
terse ones; none from the agent file), each through an 8 kHz mu-law phone channel,
clean and with babble at a chosen SNR. Every clip is encoded once and decoded with each
configuration (beam width, language-model weight and word bonus), so configurations
compare on exactly the same audio; the time per utterance includes the encoder.

The agent's examples are also the language model's training text, so their figures
flatter the biased decoders: the caller phrasings are the honest measure. They come in
two halves, ``tune`` (to pick weights on) and ``test`` (to report).

Measured on the dental agent (every 12th example plus all phrasings; kal, espeak en-us
and rms; 10 dB babble; a 2-core machine under load, so times are relative), WER of the
caller phrasings clean / babble, and mean time per utterance:
greedy 16.2 / 52.7 % (330 ms), beam 2 14.6 / 48.3 % (439 ms), beam 4 14.4 / 46.8 %
(623 ms), beam 4 with the language model at weight 0.1, bonus 0.3: 13.4 / 44.7 %
(633 ms). A second run (slt, kal, espeak; every 6th example): greedy 20.2 / 67.4 %,
beam 4 19.2 / 58.0 %, LM weight 0.2: 17.7 / 65.0 %, LM 0.4: 27.2 / 79.4 %.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from integrations.speech.audio import PHONE_SAMPLE_RATE, phone_channel
from integrations.speech.domain_lm import WordLanguageModel
from integrations.speech.moonshine import MODEL_SAMPLE_RATE, MoonshineRecognizer, _to_model_rate
from simulator.bench.speech_engines import word_errors
from simulator.voices.caller_voice import silence, synthesize
from simulator.voices.noise import BackgroundNoise, NoiseSpec, normalize_active

CALLER_PHRASINGS: tuple[str, ...] = (
    "Um, hi, I was wondering what time you guys close on Fridays.",
    "Yeah, hi. I need to get my teeth cleaned sometime next week.",
    "Do you take Guardian dental?",
    "Hello. My daughter chipped her front tooth this morning and she's really upset.",
    "I've got an appointment on Thursday but something came up. Can we do Monday instead?",
    "Where's your office? I'm driving in from Oak Street.",
    "Can I just talk to somebody at the front desk?",
    "How much would a filling be if I don't have insurance?",
    "Hi, I'd like to cancel my cleaning on the twelfth.",
    "Okay, that's everything, thanks so much.",
    "Uh, when's my next checkup again?",
    "Do you guys do whitening?",
    "I'm new in town and I'm looking for a dentist for my family.",
    "Is it okay to bring my four year old son?",
    "Can I pay for my crown in monthly installments?",
    "My gums have been bleeding for a few days now.",
    "Are you open on Saturday mornings?",
    "Is there somewhere to park near the clinic?",
    "I need to push my appointment back an hour if that's possible.",
    "Hi, it's Maria Lopez, I'm calling about my appointment tomorrow.",
    "Does MetLife cover a cleaning at your office?",
    "Could I book a checkup for the twenty third of June at ten?",
    "I'd rather speak with a real person, please.",
    "No, I think that's all for today.",
    "Yes, Tuesday at nine thirty works.",
    "What does a new patient exam cost?",
    "Sorry, what was the address again?",
    "My wisdom tooth is killing me, can somebody see me today?",
    "I won't make it to my appointment on Wednesday.",
    "Hi, do you accept Aetna or Cigna?",
    "I'd like to schedule cleanings for me and my husband.",
    "Hmm, can you remind me what time I'm booked for?",
    "Yeah, that's right.",
    "Nope, not really.",
    "How late are you open tonight?",
    "I lost a filling yesterday and it's a little sensitive.",
)
"""Caller-style requests for the reference dental agent (written for this bench)."""

DEFAULT_VOICES: tuple[str, ...] = ("slt", "rms", "awb", "kal", "espeak:en-us")
CONDITIONS: tuple[str, ...] = ("clean", "babble")


@dataclass(frozen=True)
class Clip:
    """One spoken sentence through the phone line.

    Parameters:
        text: The reference transcript.
        voice: Who spoke it.
        condition: ``clean`` or ``babble``.
        group: ``examples`` (agent file), ``tune`` or ``test`` (caller phrasings).
        pcm: 16-bit PCM at 8 kHz after the mu-law round trip.
    """

    text: str
    voice: str
    condition: str
    group: str
    pcm: bytes


@dataclass(frozen=True)
class DecoderConfig:
    """One way of decoding.

    Parameters:
        name: Label in the report.
        beam_width: Readings kept (1: greedy).
        lm_weight: Shallow-fusion weight (0: no language model).
        word_bonus: Per-word bonus when the language model is used.
    """

    name: str
    beam_width: int = 1
    lm_weight: float = 0.0
    word_bonus: float = 0.0


def sentence_groups(examples: Sequence[str]) -> list[tuple[str, str]]:
    """(text, group) for the agent's examples and the two halves of the caller phrasings."""
    groups = [(text, "examples") for text in examples]
    groups += [(text, "tune" if i % 2 == 0 else "test") for i, text in enumerate(CALLER_PHRASINGS)]
    return groups


def make_clips(
    sentences: Sequence[tuple[str, str]],
    voices: Sequence[str] = DEFAULT_VOICES,
    *,
    snr_db: float = 10.0,
) -> list[Clip]:
    """Speak every sentence in every voice, clean and in babble, through the phone line."""
    clips: list[Clip] = []
    pad = silence(0.25)
    for index, (text, group) in enumerate(sentences):
        for voice in voices:
            speech = normalize_active(pad + synthesize(text, voice=voice) + pad)
            clean = np.frombuffer(speech, dtype="<i2").astype(np.float64)
            noise = BackgroundNoise.for_speech(NoiseSpec("babble", snr_db, seed=index % 97))
            ticks = -(-clean.size // 160)
            bed = np.frombuffer(b"".join(noise(t) for t in range(ticks)), dtype="<i2")
            noisy = np.clip(clean + bed[: clean.size], -32768, 32767).astype("<i2").tobytes()
            for condition, pcm in (("clean", speech), ("babble", noisy)):
                clips.append(
                    Clip(text, voice, condition, group, phone_channel(pcm, PHONE_SAMPLE_RATE))
                )
    return clips


def evaluate(
    recognizer: MoonshineRecognizer,
    clips: Sequence[Clip],
    configs: Sequence[DecoderConfig],
    language_model: WordLanguageModel | None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Decode every clip with every configuration; word errors and time per group.

    Returns:
        ``{config name: {"wer": {group: {condition: {voice | "all": wer}}},
        "decode_ms": {"mean": ..., "p95": ...}}}``.
    """
    recognizer.language_model = language_model
    errors: dict[str, dict[tuple[str, str, str], list[int]]] = {
        c.name: defaultdict(lambda: [0, 0]) for c in configs
    }
    times: dict[str, list[float]] = {c.name: [] for c in configs}
    for done, clip in enumerate(clips):
        audio = _to_model_rate(clip.pcm, PHONE_SAMPLE_RATE)
        started = time.perf_counter()
        hidden = recognizer.encode(audio)
        encode_s = time.perf_counter() - started
        max_tokens = int(np.ceil(audio.size / MODEL_SAMPLE_RATE * 6.0)) + 4
        for config in configs:
            started = time.perf_counter()
            result = recognizer.decode(
                hidden,
                max_tokens,
                beam_width=config.beam_width,
                lm_weight=config.lm_weight,
                word_bonus=config.word_bonus,
            )
            times[config.name].append(encode_s + time.perf_counter() - started)
            e, n = word_errors(clip.text, result.text)
            for key in (
                (clip.group, clip.condition, clip.voice),
                (clip.group, clip.condition, "all"),
                ("phrasings", clip.condition, "all") if clip.group != "examples" else None,
            ):
                if key is not None:
                    errors[config.name][key][0] += e
                    errors[config.name][key][1] += n
        if progress:
            progress(done + 1, len(clips))
    report: dict[str, Any] = {}
    for config in configs:
        wer: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        for (group, condition, voice), (e, n) in sorted(errors[config.name].items()):
            wer[group][condition][voice] = round(e / n, 4) if n else 0.0
        t = np.array(times[config.name]) * 1000
        report[config.name] = {
            "config": config.__dict__,
            "wer": {g: dict(c) for g, c in wer.items()},
            "decode_ms": {
                "mean": round(float(t.mean()), 1),
                "p50": round(float(np.percentile(t, 50)), 1),
                "p95": round(float(np.percentile(t, 95)), 1),
            },
        }
    return report


def format_report(report: dict[str, Any]) -> list[str]:
    """Lines of a plain-text table: WER per group and condition, per voice, and time."""
    lines: list[str] = []
    for name, figures in report.items():
        t = figures["decode_ms"]
        lines.append(f"{name}: decode mean {t['mean']} ms, p50 {t['p50']}, p95 {t['p95']}")
        for group, conditions in figures["wer"].items():
            for condition, voices in conditions.items():
                cells = ", ".join(f"{v} {w:.1%}" for v, w in voices.items())
                lines.append(f"  {group:<9} {condition:<6} {cells}")
    return lines
