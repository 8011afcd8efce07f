"""Offline: what the recogniser hears of each request of a set, with per-word confidences.

Each request is spoken, mixed with the condition's background and passed through the phone
line and the call's own VAD and cuts exactly as ``callagent bench noise-path`` does (the same
seeds), and each segment near the request is recognised; the turn's readings are the
segments' joined (:func:`~integrations.speech.nbest.join_recognitions`), as the router finds
them in ``TurnReadings`` on a call (the default path: no whole-turn transcription). Saves,
per request, the N best readings with their token and word log-probabilities to JSON, for
``scripts/heard_decisions.py`` to decide them with the agent's router.

    PYTHONPATH=$PWD python scripts/heard_readings.py \
        --set scenarios/dental/requests/understanding-dev.yaml --voice rms --noise babble \
        --snr 10 --out /tmp/readings-rms-babble10.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path


def main() -> int:
    """Run it."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--set", type=Path, required=True)
    parser.add_argument("--voice", default="slt")
    parser.add_argument("--noise", default="babble")
    parser.add_argument("--snr", type=float, default=10.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from bot.settings import Settings
    from integrations.speech.audio import PHONE_SAMPLE_RATE
    from integrations.speech.moonshine import MoonshineRecognizer
    from integrations.speech.nbest import join_recognitions
    from integrations.speech.stt import trim_lead_in
    from simulator.bench.args import quiet_logs
    from simulator.understanding.noise_path import call_audio, stt_cuts, vad_segments
    from simulator.understanding.requests import load_request_set
    from simulator.understanding.voices import spoken

    quiet_logs(False)
    settings = Settings()
    recognizer = MoonshineRecognizer(
        cache_dir=settings.cache_dir / "moonshine",
        num_threads=settings.asr_threads,
        beam_width=settings.asr_beam_width,
    )
    rate = PHONE_SAMPLE_RATE
    lead, trail = bytes(int(0.1 * rate) * 2), bytes(int(0.2 * rate) * 2)  # as LocalSTTService
    requests = load_request_set(args.set).requests
    rows = []
    for index, request in enumerate(requests):
        pcm, start, end = call_audio(spoken(request.text, args.voice), args.noise, args.snr, index)
        found = asyncio.run(vad_segments(pcm))
        cuts = stt_cuts(found)
        near = [i for i, s in enumerate(found) if s.end_s > start - 0.3 and s.start_s < end + 0.5]
        parts = []
        for i in near:
            a, b = cuts[i]
            audio = pcm[int(a * rate) * 2 : int(b * rate) * 2]
            parts.append(recognizer.recognize(lead + trim_lead_in(audio, rate) + trail, rate))
        turn = join_recognitions(parts)
        rows.append(
            {
                "text": request.text,
                "intent": request.intent,
                "context": request.context,
                "segments": len(near),
                "readings": [
                    {
                        "text": h.text,
                        "token_logprob": h.token_logprob,
                        "word_logprobs": list(h.word_logprobs),
                    }
                    for h in turn.hypotheses
                ],
            }
        )
        print(f"\r{index + 1}/{len(requests)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    args.out.write_text(
        json.dumps(
            {
                "set": str(args.set),
                "voice": args.voice,
                "noise": args.noise,
                "snr": args.snr,
                "requests": rows,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
