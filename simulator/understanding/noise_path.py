"""``callagent bench noise-path``: where a request's words go between the caller and the NLU.

Offline and deterministic (no call, no timing): each request of a request set is spoken,
put after and before seconds of the condition's background (the caller listened to the
greeting, then waits), passed through the phone line, and fed 20 ms at a time to the
call's own VAD (:class:`~integrations.speech.vad.PhoneVADAnalyzer`). Each speech segment
is then cut as the call's STT cuts it (a second of pre-roll, back to the previous
segment's end, trimmed by :func:`~integrations.speech.stt.trim_lead_in`) and transcribed
by the embedded recogniser. Per request and overall:

- how long after the caller's last word the VAD ended the segment, and how much audio
  the recogniser was handed against the caller's speech;
- the word error rate of the segments' transcripts against the same recogniser on the
  caller's speech cut by hand (the speech span, nothing else): the gap is what the call
  path loses, the rest is the recogniser's;
- the turn's recogniser confidence (``Recognition.confidence`` of the joined readings);
- for a request split into several segments, the word error rate of the call's turn
  text: the turn's audio transcribed as one piece, as
  :class:`~processors.whole_turn.WholeTurnTranscriber` does (single-segment requests
  keep their segment's transcript).

Prints the figures (and saves them as JSON); nothing is asserted. Transcripts go to the
JSON only.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.bench import args as bench_args

if TYPE_CHECKING:
    from processors.agent_definition import AgentDefinition

LEAD_S = 4.0
"""Background before the request (the caller listened to the greeting)."""
TAIL_S = 3.0
"""Background after it (the caller waits for the answer)."""
PREROLL_S = 1.0
"""Audio the STT keeps before the VAD's start (Pipecat's segmented STT keeps a second)."""
FRAME_BYTES = 320
"""20 ms of 8 kHz 16-bit audio: what a phone call delivers at a time."""


@dataclass
class Segment:
    """One VAD speech segment, in seconds since the start of the audio."""

    start_s: float
    end_s: float


@dataclass
class RequestPath:
    """What became of one request's words."""

    text: str
    speech_s: tuple[float, float]
    segments: list[Segment] = field(default_factory=list)
    stray_segments: int = 0
    transcript: str = ""
    hand_cut_transcript: str = ""
    word_errors: int = 0
    hand_cut_word_errors: int = 0
    turn_transcript: str = ""
    turn_word_errors: int = 0
    words: int = 0
    confidence: float | None = None
    alternatives: tuple[str, ...] = ()
    word_confidences: tuple[float, ...] = ()
    """The recogniser's confidence in each word of ``transcript``."""
    """The recogniser's other readings of the turn (the NLU router may try them)."""

    @property
    def end_delay_s(self) -> float | None:
        """The last segment's end after the caller's last word (None: nothing heard)."""
        return self.segments[-1].end_s - self.speech_s[1] if self.segments else None

    @property
    def audio_to_speech(self) -> float:
        """Seconds of segment audio per second of the caller's speech."""
        speech = self.speech_s[1] - self.speech_s[0]
        heard = sum(s.end_s - s.start_s for s in self.segments)
        return heard / speech if speech > 0 else 0.0


def add_parser(kinds: argparse._SubParsersAction) -> None:
    """Register ``callagent bench noise-path``."""
    p = kinds.add_parser(
        "noise-path",
        help="offline: VAD segments vs the caller's speech, and the ASR's words on them vs "
        "on the speech cut by hand (where a noisy call loses the words)",
    )
    p.add_argument("--set", type=Path, required=True, help="a request set (YAML)")
    p.add_argument("--voice", default="slt", help="the caller's voice (slt)")
    p.add_argument("--noise", default="babble", help="none, white, pink or babble (babble)")
    p.add_argument("--snr", type=float, default=10.0, help="SNR in dB (10)")
    p.add_argument("--limit", type=int, help="only this many requests (taken in turn per intent)")
    p.add_argument(
        "--max-pause",
        type=float,
        help="longest pause (s) kept inside a split turn's audio (default: the call's setting)",
    )
    bench_args.add_output_arguments(p)
    p.set_defaults(func=run_noise_path)


def run_noise_path(args: argparse.Namespace) -> int:
    """``callagent bench noise-path``."""
    from simulator.bench import kit as benchkit
    from simulator.understanding.bench import pick_requests
    from simulator.understanding.requests import RequestSetError, load_request_set

    bench_args.quiet_logs(args.verbose)
    try:
        requests = pick_requests(load_request_set(args.set).requests, args.limit)
    except RequestSetError as e:
        print(e, file=sys.stderr)
        return 2
    from bot.settings import Settings

    recognizer = embedded_recognizer()
    max_pause = Settings().whole_turn_max_pause_secs if args.max_pause is None else args.max_pause
    rows: list[RequestPath] = []
    for index, request in enumerate(requests):
        rows.append(
            trace(request.text, args.voice, args.noise, args.snr, index, recognizer, max_pause)
        )
        print(f"\r{index + 1}/{len(requests)} requests", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    summary = summarize(rows)
    for line in report_lines(summary, args.noise, args.snr):
        print(line)
    benchkit.save_json(
        args.json,
        {
            "bench": "noise-path",
            "set": str(args.set),
            "voice": args.voice,
            "noise": args.noise,
            "snr_db": args.snr,
            "max_pause_s": max_pause,
            "summary": summary,
            "requests": [
                {**asdict(r), "end_delay_s": r.end_delay_s, "audio_to_speech": r.audio_to_speech}
                for r in rows
            ],
        },
    )
    return 0


def embedded_recognizer(agent: AgentDefinition | None = None) -> Any:
    """The embedded recogniser as the call settings build it (``agent``: its word bias, if on)."""
    from bot.call.startup import load_recognizer
    from bot.settings import Settings

    return load_recognizer(Settings(), agent)


def call_audio(clip: bytes, noise: str, snr_db: float, seed: int) -> tuple[bytes, float, float]:
    """The caller's side of the call: background, the request, background; phone line.

    Returns:
        The audio (8 kHz 16-bit) and the caller's speech span in it (seconds).
    """
    import numpy as np

    from integrations.speech.audio import PHONE_SAMPLE_RATE, mulaw_decode, mulaw_encode
    from simulator.phone import voiced_span
    from simulator.voices.noise import SPEECH_LEVEL_RMS, BackgroundNoise, noise_bed

    rate = PHONE_SAMPLE_RATE
    span = voiced_span(clip) or (0.0, len(clip) / 2 / rate)
    pcm = bytes(int(LEAD_S * rate) * 2) + clip + bytes(int(TAIL_S * rate) * 2)
    pcm = pcm[: len(pcm) - len(pcm) % FRAME_BYTES]
    if noise != "none":
        bed = noise_bed(noise)
        level = SPEECH_LEVEL_RMS / 10 ** (snr_db / 20.0)
        background = BackgroundNoise(bed, level, offset=random.Random(seed).randrange(len(bed)))
        ticks = len(pcm) // FRAME_BYTES
        noisy = np.frombuffer(b"".join(background(t) for t in range(ticks)), dtype="<i2")
        mixed = np.frombuffer(pcm, dtype="<i2").astype(np.int32) + noisy.astype(np.int32)
        pcm = np.clip(mixed, -32768, 32767).astype("<i2").tobytes()
    return mulaw_decode(mulaw_encode(pcm)), LEAD_S + span[0], LEAD_S + span[1]


async def vad_segments(pcm: bytes) -> list[Segment]:
    """The speech segments the call's VAD finds, fed as a call feeds it (20 ms at a time)."""
    from pipecat.audio.vad.vad_analyzer import VADParams, VADState

    from bot.settings import Settings
    from integrations.speech.audio import PHONE_SAMPLE_RATE
    from integrations.speech.vad import PhoneVADAnalyzer

    settings = Settings()
    vad = PhoneVADAnalyzer(
        params=VADParams(start_secs=settings.vad_start_secs, stop_secs=settings.vad_stop_secs),
        noise_gate=settings.vad_noise_gate,
    )
    vad.set_sample_rate(PHONE_SAMPLE_RATE)
    segments: list[Segment] = []
    state, start = VADState.QUIET, None
    now = 0.0
    for offset in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
        new = await vad.analyze_audio(pcm[offset : offset + FRAME_BYTES])
        now = (offset + FRAME_BYTES) / 2 / PHONE_SAMPLE_RATE
        if new is VADState.SPEAKING and state is VADState.STARTING:
            start = now
        elif new is VADState.QUIET and state is VADState.STOPPING and start is not None:
            segments.append(Segment(start, now))
            start = None
        state = new
    if start is not None:
        segments.append(Segment(start, now))
    return segments


def stt_cuts(segments: list[Segment], preroll_s: float = PREROLL_S) -> list[tuple[float, float]]:
    """Where the call's STT cuts each segment: pre-roll back to the previous segment's end."""
    cuts: list[tuple[float, float]] = []
    previous_end = 0.0
    for s in segments:
        cuts.append((max(previous_end, s.start_s - preroll_s), s.end_s))
        previous_end = s.end_s
    return cuts


def trace(
    text: str,
    voice: str,
    noise: str,
    snr_db: float,
    seed: int,
    recognizer: Any,
    max_pause_s: float = 0.4,
    *,
    hand_cut: bool = True,
) -> RequestPath:
    """Follow one request from the caller's mouth to the recogniser's words.

    ``hand_cut``: also transcribe the caller's speech cut by hand (False: only the call's
    path, as ``callagent nlu understanding --heard`` needs).
    """
    from integrations.speech.audio import PHONE_SAMPLE_RATE
    from integrations.speech.nbest import join_recognitions
    from integrations.speech.stt import trim_lead_in
    from integrations.speech.whole_turn import (
        PREROLL_SECS,
        SPEECH_LEAD_SECS,
        recognize_turn,
        turn_spans,
    )
    from simulator.bench.speech_engines import word_errors
    from simulator.understanding.voices import spoken

    rate = PHONE_SAMPLE_RATE
    pcm, speech_start, speech_end = call_audio(spoken(text, voice), noise, snr_db, seed)
    row = RequestPath(text, (round(speech_start, 3), round(speech_end, 3)))
    found = asyncio.run(vad_segments(pcm))
    cuts = stt_cuts(found)
    # the request's segments: those near its speech; the rest is background taken for speech
    near = [
        i
        for i, s in enumerate(found)
        if s.end_s > speech_start - 0.3 and s.start_s < speech_end + 0.5
    ]
    row.stray_segments = len(found) - len(near)
    lead, trail = bytes(int(0.1 * rate) * 2), bytes(int(0.2 * rate) * 2)  # as LocalSTTService

    def cut(start_s: float, end_s: float) -> bytes:
        return pcm[int(start_s * rate) * 2 : int(end_s * rate) * 2]

    readings = [
        recognizer.recognize(lead + trim_lead_in(cut(*cuts[i]), rate) + trail, rate) for i in near
    ]
    row.segments = [Segment(round(found[i].start_s, 3), round(found[i].end_s, 3)) for i in near]
    turn = join_recognitions(readings)
    row.transcript = turn.text
    row.confidence = round(turn.confidence, 3) if turn.hypotheses else None
    row.alternatives = turn.alternatives
    row.word_confidences = tuple(round(c, 3) for c in turn.word_confidences)
    if hand_cut:
        speech = cut(speech_start - 0.15, speech_end + 0.2)
        row.hand_cut_transcript = recognizer.recognize(lead + speech + trail, rate).text
    row.turn_transcript = row.transcript
    if len(near) > 1:  # the call transcribes a split turn's audio again, as one piece
        spans = turn_spans(
            [(found[i].start_s, found[i].end_s) for i in near],
            preroll=PREROLL_SECS,
            speech_lead=SPEECH_LEAD_SECS,
            max_pause=max_pause_s,
            floor=cuts[near[0]][0],
        )
        whole = recognize_turn(recognizer, b"".join(cut(*span) for span in spans), rate)
        row.turn_transcript = whole.text or row.transcript
    row.word_errors, row.words = word_errors(text, row.transcript)
    row.turn_word_errors, _ = word_errors(text, row.turn_transcript)
    row.hand_cut_word_errors, _ = word_errors(text, row.hand_cut_transcript)
    return row


def summarize(rows: list[RequestPath]) -> dict[str, Any]:
    """The overall figures of a run."""
    from integrations.percentile import percentile

    delays = [d for d in (r.end_delay_s for r in rows) if d is not None]
    confidences = [r.confidence for r in rows if r.confidence is not None]
    words = sum(r.words for r in rows)
    speech = sum(r.speech_s[1] - r.speech_s[0] for r in rows)
    heard = sum(r.audio_to_speech * (r.speech_s[1] - r.speech_s[0]) for r in rows)

    def pct(values: list[float], p: float) -> float | None:
        return round(percentile(values, p), 3) if values else None

    return {
        "requests": len(rows),
        "nothing_heard": sum(not r.segments for r in rows),
        "split": sum(len(r.segments) > 1 for r in rows),
        "stray_segments": sum(r.stray_segments for r in rows),
        "end_delay_s": {"p50": pct(delays, 50), "p90": pct(delays, 90), "max": pct(delays, 100)},
        "audio_to_speech": round(heard / speech, 3) if speech else None,
        "wer_pct": round(100 * sum(r.word_errors for r in rows) / words, 1) if words else None,
        "turn_wer_pct": round(100 * sum(r.turn_word_errors for r in rows) / words, 1)
        if words
        else None,
        "split_wer_pct": _wer([r for r in rows if len(r.segments) > 1], "word_errors"),
        "split_turn_wer_pct": _wer([r for r in rows if len(r.segments) > 1], "turn_word_errors"),
        "split_hand_cut_wer_pct": _wer(
            [r for r in rows if len(r.segments) > 1], "hand_cut_word_errors"
        ),
        "hand_cut_wer_pct": (
            round(100 * sum(r.hand_cut_word_errors for r in rows) / words, 1) if words else None
        ),
        "confidence": {"p10": pct(confidences, 10), "p50": pct(confidences, 50)},
    }


def _wer(rows: list[RequestPath], errors: str) -> float | None:
    words = sum(r.words for r in rows)
    return round(100 * sum(getattr(r, errors) for r in rows) / words, 1) if words else None


def report_lines(summary: dict[str, Any], noise: str, snr_db: float) -> list[str]:
    """The summary as text."""
    condition = "clean" if noise == "none" else f"{noise}@{snr_db:g}dB"
    delay, confidence = summary["end_delay_s"], summary["confidence"]
    return [
        f"== {condition}: {summary['requests']} requests, {summary['nothing_heard']} not heard, "
        f"{summary['split']} in several segments, {summary['stray_segments']} stray segments",
        f"  segment end after the caller's last word: p50 {delay['p50']} s, p90 {delay['p90']} s,"
        f" max {delay['max']} s; ASR audio / speech {summary['audio_to_speech']}",
        f"  WER on the call's segments {summary['wer_pct']} % vs on the speech cut by hand "
        f"{summary['hand_cut_wer_pct']} %; turn confidence p10 {confidence['p10']}, "
        f"p50 {confidence['p50']}",
        f"  WER of the turn text (split turns transcribed whole) {summary['turn_wer_pct']} %; "
        f"split requests only: segments {summary['split_wer_pct']} %, whole turn "
        f"{summary['split_turn_wer_pct']} %, cut by hand {summary['split_hand_cut_wer_pct']} %",
    ]
