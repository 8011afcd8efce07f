"""``callagent bench amd``'s figures: one result per answer, the summary and its lines.

Both ways of measuring (:mod:`simulator.bench.amd_call_path`, the real call path, and
:mod:`simulator.bench.amd_in_process`) give an :class:`AnswerResult` per answer;
:func:`summarize` turns them into the confusion matrix, accuracy, people taken for
machines and the timings (percentiles from :mod:`integrations.percentile`), and
:func:`format_report` into lines for the terminal. Nothing is asserted: a bench prints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from integrations.percentile import percentile
from simulator.bench.amd_answers import MACHINE, PERSON

TALK_OVER_S = 0.2
"""Agent audio heard before the callee's hello, beep or greeting ended, counted as talking over."""
OPENING_MEANING = {
    "call": "heard at the phone",
    "in-process": "pushed by the detector",
}


@dataclass
class AnswerResult:
    """What the detector made of one answer.

    Parameters:
        name, truth, kind, noise, voice: The answer.
        verdict: ``human``, ``machine``, ``unknown`` or ``none`` (no verdict recorded).
        source: The strategy that decided (in process; "" on the call path).
        decided_after_s: The verdict's time after the answer (the record's ``amd_ms``).
        opening_after_speech_s: People: the end of their hello to the opening (pushed in
            process; its first audio heard at the phone on the call path).
        withdrawn: In process: the opening went out before a machine verdict.
        openings_held: In process: times the opening was stopped as the callee went on.
        disposition: The call's outcome (machines: ``voicemail-left``...).
        message_after_beep_s: Machines with a beep: the beep's end to the message.
        message_after_greeting_s: Machines without a beep (call path): the greeting's end
            to the message heard.
        bot_over_callee_s: Call path: agent audio heard before the hello, beep or
            greeting ended.
        error: Why the answer could not be measured (call path), else None.
    """

    name: str
    truth: str
    kind: str
    noise: str
    voice: str
    verdict: str
    source: str
    decided_after_s: float | None
    opening_after_speech_s: float | None
    withdrawn: bool | None
    openings_held: int | None
    disposition: str | None
    message_after_beep_s: float | None
    message_after_greeting_s: float | None = None
    bot_over_callee_s: float | None = None
    error: str | None = None


def _stats(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 3),
        "p95": round(percentile(values, 95), 3),
        "max": round(max(values), 3),
    }


def _rate(n: int, of: int) -> float | None:
    return round(n / of, 4) if of else None


def summarize(results: Sequence[AnswerResult], *, path: str = "call") -> dict[str, Any]:
    """The figures: confusion matrix, accuracy, errors, timings.

    A person whose verdict is ``unknown`` (or none) counts as right: the call goes on as
    with a person. A machine is right only when judged a machine. Answers that could not
    be measured (``error``) are counted apart and left out of the figures.
    """
    failed = [r for r in results if r.error is not None]
    results = [r for r in results if r.error is None]
    matrix = Counter((r.truth, r.verdict) for r in results)
    people = [r for r in results if r.truth == PERSON]
    machines = [r for r in results if r.truth == MACHINE]
    taken = sum(r.verdict == "machine" for r in people)
    right = len(people) - taken + sum(r.verdict == "machine" for r in machines)
    over = [r for r in results if (r.bot_over_callee_s or 0.0) >= TALK_OVER_S]
    return {
        "path": path,
        "answers": len(results),
        "not_measured": len(failed),
        "errors": dict(Counter(str(r.error) for r in failed)),
        "confusion": {f"{truth}->{verdict}": n for (truth, verdict), n in sorted(matrix.items())},
        "accuracy": _rate(right, len(results)),
        "people_taken_for_machines": taken,
        "people_taken_for_machines_rate": _rate(taken, len(people)),
        "machines_missed": sum(r.verdict != "machine" for r in machines),
        "machine_verdict_s": _stats(
            [r.decided_after_s for r in machines if r.verdict == "machine" and r.decided_after_s]
        ),
        "message_after_beep_s": _stats(
            [r.message_after_beep_s for r in machines if r.message_after_beep_s is not None]
        ),
        "message_after_greeting_s": _stats(
            [r.message_after_greeting_s for r in machines if r.message_after_greeting_s is not None]
        ),
        "hello_to_opening_s": _stats(  # a person taken for a machine hears the voicemail
            [
                r.opening_after_speech_s
                for r in people
                if r.opening_after_speech_s is not None and r.verdict != "machine"
            ]
        ),
        "people_without_opening": sum(r.opening_after_speech_s is None for r in people),
        "people_talked_over": sum(r.truth == PERSON for r in over),
        "machines_talked_over": sum(r.truth == MACHINE for r in over),
        "openings_withdrawn_on_machines": sum(bool(r.withdrawn) for r in machines),
        "openings_held_people": sum(r.openings_held or 0 for r in people),
        "openings_held_machines": sum(r.openings_held or 0 for r in machines),
        "verdict_sources": dict(Counter(f"{r.truth}:{r.source}" for r in results if r.source)),
        "dispositions": {
            truth: dict(Counter(str(r.disposition) for r in results if r.truth == truth))
            for truth in (PERSON, MACHINE)
        },
    }


def _line(s: dict[str, Any]) -> str:
    if not s["n"]:
        return "-"
    return f"p50 {s['p50']:.2f} s  p95 {s['p95']:.2f} s  max {s['max']:.2f} s  (n={s['n']})"


def format_report(summary: dict[str, Any]) -> list[str]:
    """The summary as lines for the terminal."""
    confusion = summary["confusion"]
    lines = [f"{summary['answers']} answers ({summary['path']})"]
    if summary["not_measured"]:
        lines.append(f"not measured: {summary['not_measured']} {summary['errors']}")
    lines.append("truth \\ verdict   human  machine  unknown  none")
    for truth in (PERSON, MACHINE):
        cells = [confusion.get(f"{truth}->{v}", 0) for v in ("human", "machine", "unknown", "none")]
        lines.append(f"{truth:<17} " + "  ".join(f"{c:>6}" for c in cells))
    if summary["accuracy"] is None:
        return lines
    taken_rate = summary["people_taken_for_machines_rate"] or 0.0
    opening = OPENING_MEANING.get(summary["path"], "")
    lines += [
        f"accuracy {summary['accuracy']:.1%}",
        f"people taken for machines {summary['people_taken_for_machines']} ({taken_rate:.1%})",
        f"machines missed {summary['machines_missed']}",
        f"machine verdict after the answer: {_line(summary['machine_verdict_s'])}",
        f"message start after the beep: {_line(summary['message_after_beep_s'])}",
        f"message start after a beepless greeting: {_line(summary['message_after_greeting_s'])}",
        f"person's hello end to the opening ({opening}; people judged people): "
        f"{_line(summary['hello_to_opening_s'])}",
        f"people who heard no opening: {summary['people_without_opening']}",
    ]
    if summary["path"] == "call":
        lines.append(
            f"agent heard over the callee (>= {TALK_OVER_S:g} s before the hello/beep/greeting "
            f"ended): people {summary['people_talked_over']}, machines "
            f"{summary['machines_talked_over']}"
        )
    else:
        lines += [
            f"openings withdrawn on machines: {summary['openings_withdrawn_on_machines']}",
            f"openings stopped as the callee went on (people / machines): "
            f"{summary['openings_held_people']} / {summary['openings_held_machines']}",
            f"verdict sources: {summary['verdict_sources']}",
        ]
    lines.append(f"outcomes: {summary['dispositions']}")
    return lines
