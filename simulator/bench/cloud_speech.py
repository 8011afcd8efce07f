"""``--speech cloud`` for the benches: the agents' STT and TTS go to a Cartesia fake on loopback.

The fake (:class:`~simulator.fake_cartesia.FakeCartesia`) answers with realistic delays and
costs the agent what the real cloud service would: a WebSocket per call, audio out, text
in, audio back; no speech model runs in the agent for a call. It runs in the bench's own
process (its CPU shows as client CPU, not server CPU).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from simulator.fake_cartesia import FakeCartesia

CLOUD_SETTINGS = {
    "CALLAGENT_STT": "cartesia",
    "CALLAGENT_TTS": "cartesia",
    "CARTESIA_API_KEY": "fake-cartesia-key",
}


@dataclass
class Speech:
    """The speech the agents use: their settings, and the fake when it is the cloud's."""

    kind: str
    env: dict[str, str] = field(default_factory=dict[str, str])
    fake: FakeCartesia | None = None

    def summary(self) -> dict[str, Any]:
        """What the fake served (cloud), for the report: proof the cloud path was taken."""
        if self.fake is None:
            return {"speech": self.kind}
        return {
            "speech": self.kind,
            "cloud_transcripts": self.fake.transcripts,
            "cloud_syntheses": self.fake.syntheses,
        }


def phrase_lengths(clips: Mapping[str, bytes]) -> dict[str, float]:
    """Each caller clip's voiced length in seconds (the fake STT tells phrases apart by it)."""
    from simulator.phone import FRAME_S, voiced_span

    out: dict[str, float] = {}
    for text, pcm in clips.items():
        span = voiced_span(pcm)
        out[text] = (span[1] - span[0]) if span else FRAME_S
    return out


@asynccontextmanager
async def cloud_speech(
    kind: str, clips: Mapping[str, bytes], *, host: str = "127.0.0.1"
) -> AsyncIterator[Speech]:
    """The agents' speech settings for ``kind`` (``embedded``: none; ``cloud``: the fake's).

    Args:
        kind: ``embedded`` or ``cloud``.
        clips: What the callers say (text -> 8 kHz PCM), so the fake STT can answer.
        host: Where the fake listens (an address the agents reach).
    """
    if kind != "cloud":
        yield Speech(kind)
        return
    async with FakeCartesia(host=host) as fake:
        fake.expect(phrase_lengths(clips))
        yield Speech(kind, {**CLOUD_SETTINGS, "CARTESIA_BASE_URL": fake.ws_origin}, fake)
