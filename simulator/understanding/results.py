"""The understanding bench's results: one row per call, and the figures drawn from them.

Figures are grouped by condition (clean, babble at 10 dB...) and within it by intent,
voice, request style and hearing (how many of the request's words the recogniser got
wrong, :func:`hearing`: which outcomes the words heard decide, and which the
understanding of well-heard words): the outcome counts and rates, how often the caller was cut
off or the request answered in fragments, the recogniser's word error rate, and the turn
latency of complete requests (at the phone, caller end of speech to the first bot audio;
calls cut off or answered in fragments are left out). The confusion table counts, per
intended intent, what the agent acted on: an intent, or ``(clarified)``, ``(repaired)``,
``(none)``. Requests judged in context are counted with the rest; ``in_context`` says how
many there were and how often the agent acted on their context line (a context line not
acted on leaves the request judged out of the context meant).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from integrations.percentile import percentile
from simulator.understanding.outcomes import OUTCOMES, Outcome
from simulator.understanding.requests import OUT_OF_SCOPE

CLEAN = "clean"
GROUPINGS = (
    ("intent", "by_intent"),
    ("voice", "by_voice"),
    ("style", "by_style"),
    ("hearing", "by_hearing"),
)
"""The groupings within a condition: (what is grouped by, its key in the summary)."""
HEARING_BANDS = ((0.0, "words exact"), (0.2, "under 20 % wrong"), (0.4, "20-40 % wrong"))
"""Upper bounds (inclusive for exact, else exclusive) of the share of a request's words
heard wrong, and their names; the rest is "40 % or more wrong"."""


@dataclass
class RequestCall:
    """One call: one request in one voice under one condition, and what became of it.

    Parameters:
        request: The request's text.
        intent: The intended intent (``kb:<id>``, ``out_of_scope`` included).
        style: The request's style (``filler_first``, ``terse``...).
        voice: The caller's voice (``NAME[@RATE]``).
        condition: ``clean`` or ``<noise>@<snr>dB``.
        context: The caller line said (and answered) before the request, if any.
        outcome: See :class:`~simulator.understanding.outcomes.Outcome`.
        decided_intent: The first decision's intent (None without one).
        band: The first decision's band.
        confidence: The first decision's confidence.
        context_intent: What the agent decided on the context line (None without one).
        context_band: That decision's band.
        cut_off: The agent's turn ended while the caller was still speaking.
        cut_after_ms: How far into the caller's speech that happened.
        fragmented: More than one decision was made on the request's speech.
        transcript: What the recogniser heard of the request (from the call record).
        word_errors: Word edit distance between the request and the transcript.
        words: Words in the request.
        latency_ms: Caller end of speech to the first bot audio at the phone.
        speech_ms: How long the caller spoke (first to last voiced frame).
        call_id: The agent's id of the call.
        timeline_s: Phone-side times (s since the stream started): ``greeting`` heard,
            caller ``onset`` and ``end`` of the request, ``context_onset`` and
            ``context_end`` of its context line (with ``events``, the reading can be
            redone).
        error: Why the call could not be measured, if it could not.
        events: The call's events as the agent published them (no caller data), to
            audit the reading.
    """

    request: str
    intent: str
    style: str
    voice: str
    condition: str
    context: str | None = None
    outcome: str = Outcome.NO_DECISION.value
    decided_intent: str | None = None
    band: str | None = None
    confidence: float | None = None
    context_intent: str | None = None
    context_band: str | None = None
    cut_off: bool = False
    cut_after_ms: float | None = None
    fragmented: bool = False
    transcript: str | None = None
    word_errors: int | None = None
    words: int | None = None
    latency_ms: float | None = None
    speech_ms: float | None = None
    call_id: str | None = None
    timeline_s: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """The request was heard out: not cut off, and answered as a whole."""
        return not (self.cut_off or self.fragmented)

    @property
    def wrong_share(self) -> float | None:
        """The share of the request's words the recogniser got wrong (None: not scored)."""
        if self.word_errors is None or not self.words:
            return None
        return self.word_errors / self.words

    @property
    def acted_on(self) -> str:
        """The confusion table's column: what the agent acted on."""
        if self.outcome in (Outcome.ACTED_RIGHT, Outcome.ACTED_WRONG):
            return self.decided_intent or OUT_OF_SCOPE
        if self.outcome in (Outcome.CLARIFIED_RIGHT, Outcome.CLARIFIED_WRONG):
            return "(clarified)"
        if self.outcome == Outcome.REPAIRED:
            return "(repaired)"
        return "(none)"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def group_stats(rows: Sequence[RequestCall]) -> dict[str, Any]:
    """Outcome counts and rates, cut-offs, WER and latency of complete requests."""
    n = len(rows)
    counts = Counter(r.outcome for r in rows)
    cut = sum(r.cut_off for r in rows)
    fragmented = sum(r.fragmented for r in rows)
    scored = [r for r in rows if r.wrong_share is not None]
    errors = sum(r.word_errors or 0 for r in scored)
    words = sum(r.words or 0 for r in scored)
    latencies = [r.latency_ms for r in rows if r.latency_ms is not None and r.complete]
    return {
        "calls": n,
        "counts": {o.value: counts.get(o.value, 0) for o in OUTCOMES},
        "rates_pct": {o.value: _pct(counts.get(o.value, 0), n) for o in OUTCOMES},
        "cut_off": cut,
        "cut_off_pct": _pct(cut, n),
        "fragmented": fragmented,
        "fragmented_pct": _pct(fragmented, n),
        "wer_pct": round(100 * errors / words, 1) if words else None,
        "wer_calls": len(scored),
        "latency_complete_ms": {
            "n": len(latencies),
            "p50": round(percentile(latencies, 50), 1) if latencies else None,
            "p95": round(percentile(latencies, 95), 1) if latencies else None,
        },
        "errors": sum(r.error is not None for r in rows),
    }


def summarize(rows: Sequence[RequestCall]) -> dict[str, Any]:
    """Every figure of a run, per condition (see the module docstring)."""
    out: dict[str, Any] = {"overall": group_stats(rows), "conditions": {}}
    for condition, in_condition in _grouped(rows, lambda r: r.condition).items():
        out["conditions"][condition] = {
            "overall": group_stats(in_condition),
            "by_intent": _by(in_condition, lambda r: r.intent),
            "by_voice": _by(in_condition, lambda r: r.voice),
            "by_style": _by(in_condition, lambda r: r.style),
            "by_hearing": _by(sorted(in_condition, key=_hearing_order), hearing),
            "confusion": confusion(in_condition),
            "in_context": in_context(in_condition),
        }
    return out


def in_context(rows: Iterable[RequestCall]) -> dict[str, Any]:
    """Calls whose request came after a context line, and what became of that line."""
    judged = [r for r in rows if r.context]
    return {
        "calls": len(judged),
        "intents": list(dict.fromkeys(r.intent for r in judged)),
        "context_acted": sum(r.context_band == "act" for r in judged),
        "context_decided": dict(
            Counter(f"{r.context_intent} ({r.context_band})" for r in judged).most_common()
        ),
    }


def confusion(rows: Iterable[RequestCall]) -> dict[str, dict[str, int]]:
    """Intended intent -> what the agent acted on -> calls."""
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows:
        table[r.intent][r.acted_on] += 1
    return {intended: dict(acted.most_common()) for intended, acted in table.items()}


def hearing(row: RequestCall) -> str:
    """How well the recogniser heard the request: its band of words heard wrong."""
    wrong = row.wrong_share
    if wrong is None:
        return "not scored"
    if wrong == 0:
        return HEARING_BANDS[0][1]
    for upper, name in HEARING_BANDS[1:]:
        if wrong < upper:
            return name
    return "40 % or more wrong"


def _hearing_order(row: RequestCall) -> float:
    """Rows from the best heard to the worst (unscored last), so the bands come in order."""
    return float("inf") if row.wrong_share is None else row.wrong_share


def _by(rows: Sequence[RequestCall], key: Callable[[RequestCall], str]) -> dict[str, Any]:
    return {name: group_stats(group) for name, group in _grouped(rows, key).items()}


def _grouped(
    rows: Iterable[RequestCall], key: Callable[[RequestCall], str]
) -> dict[str, list[RequestCall]]:
    groups: dict[str, list[RequestCall]] = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    return groups


def _pct(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0
