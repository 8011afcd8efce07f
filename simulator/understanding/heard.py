"""What the call would hear of each request: the turn text the router gets, offline.

``callagent nlu understanding --heard`` scores the agent's router and act guard on the
recogniser's words instead of the request's exact words: each request (and its context
line) is spoken in a voice, passed through the phone line with the condition's background,
cut by the call's own VAD and transcribed by the embedded recogniser as the call's STT
does (:func:`simulator.understanding.noise_path.trace`). The turn's best reading, its
other readings and the recogniser's confidence are what the router decides on.

No call and no timing: the turn is the whole request (a caller cut off mid-request, which
the call bench counts, is not modelled). Deterministic: the noise offset is seeded by the
request's text. The transcripts are cached per request, voice and condition under the
cache dir (``heard-requests/``, keyed by the recogniser's and VAD's settings), so scoring
again after an NLU change only decides text.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from processors.agent_definition import AgentDefinition

HEARD_FORMAT = 2
"""Part of the cache key: bump when the way a request is heard changes."""


@dataclass(frozen=True)
class Heard:
    """The turn a call's router would get for one spoken request."""

    text: str
    alternatives: tuple[str, ...] = ()
    confidence: float | None = None
    word_confidences: tuple[float, ...] = ()
    """The recogniser's confidence in each word of ``text`` (empty: not known)."""


@dataclass(frozen=True)
class Condition:
    """The background a request is heard in."""

    noise: str = "none"
    snr_db: float = 10.0

    @property
    def name(self) -> str:
        """``clean`` or ``babble@10dB``."""
        return "clean" if self.noise == "none" else f"{self.noise}@{self.snr_db:g}dB"


def path_fingerprint() -> str:
    """What the heard text depends on besides the request, voice and condition."""
    from bot.settings import Settings

    s = Settings()
    # the language model's key only when it is on, so the caches of unbiased runs stay valid
    corpus = [str(s.asr_lm_corpus_dir)] if s.asr_lm_corpus_dir else []
    lm = {"lm": [s.asr_lm_weight, s.asr_lm_word_bonus, *corpus]} if s.asr_lm_weight > 0 else {}
    return json.dumps(
        {
            **lm,
            "format": HEARD_FORMAT,
            "beam": s.asr_beam_width,
            "vad": [s.vad_start_secs, s.vad_stop_secs, s.vad_noise_gate],
            "whole_turn": [s.whole_turn_stt, s.whole_turn_max_pause_secs],
        },
        sort_keys=True,
    )


class HeardRequests:
    """Transcripts of spoken requests, computed once and kept in a JSON file per voice."""

    def __init__(
        self, cache_dir: Path | None, condition: Condition, agent: AgentDefinition | None = None
    ) -> None:
        """Open the cache (``cache_dir`` None: nothing is kept).

        Args:
            cache_dir: Where the transcripts are kept (None: nowhere).
            condition: The background the requests are heard in.
            agent: The agent whose word model biases the recogniser when
                ``CALLAGENT_ASR_LM_WEIGHT`` is set (as on its calls); None: no bias.
        """
        self._agent = agent
        self._dir = cache_dir / "heard-requests" if cache_dir is not None else None
        self._condition = condition
        self._fingerprint = hashlib.sha256(path_fingerprint().encode()).hexdigest()[:12]
        self._recognizer: Any = None
        self._whole_turn: bool | None = None

    def _file(self, voice: str) -> Path | None:
        if self._dir is None:
            return None
        safe = voice.replace(":", "_").replace("@", "_at_").replace("+", "_")
        return self._dir / f"{safe}-{self._condition.name}-{self._fingerprint}.json"

    def hear(self, texts: Iterable[str], voice: str) -> dict[str, Heard]:
        """What the call hears of each text in ``voice`` (cached ones are not heard again)."""
        path = self._file(voice)
        known: dict[str, dict[str, Any]] = {}
        if path is not None and path.exists():
            known = json.loads(path.read_text("utf-8"))
        wanted = list(dict.fromkeys(texts))
        missing = [t for t in wanted if t not in known]
        for n, text in enumerate(missing):
            known[text] = asdict(self._trace(text, voice))
            print(f"\r{voice}: heard {n + 1}/{len(missing)}", end="", file=sys.stderr, flush=True)
        if missing:
            print(file=sys.stderr)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(known, indent=0, sort_keys=True), "utf-8")
        return {
            t: Heard(
                known[t]["text"],
                tuple(known[t]["alternatives"]),
                known[t]["confidence"],
                tuple(known[t].get("word_confidences", ())),
            )
            for t in wanted
        }

    def _trace(self, text: str, voice: str) -> Heard:
        from bot.settings import Settings
        from simulator.understanding import noise_path

        if self._recognizer is None:
            settings = Settings()
            self._recognizer = noise_path.embedded_recognizer(self._agent)
            self._whole_turn = settings.whole_turn_stt
            self._max_pause = settings.whole_turn_max_pause_secs
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")
        row = noise_path.trace(
            text,
            voice,
            self._condition.noise,
            self._condition.snr_db,
            seed,
            self._recognizer,
            self._max_pause,
            hand_cut=False,
        )
        turn = row.turn_transcript if self._whole_turn else row.transcript
        # the other readings and the words' confidences are of the segments' text (the whole
        # turn keeps its best reading only)
        same = turn == row.transcript
        return Heard(
            turn,
            row.alternatives if same else (),
            row.confidence,
            row.word_confidences if same else (),
        )
