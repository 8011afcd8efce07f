"""Reports of a simulation: console lines, JSON, and a self-contained HTML page.

The HTML page has no scripts and no external resources: tables, and latency histograms
drawn as inline SVG (with p50/p95 markers). Recordings are linked by relative path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from bot.operator import charts
from simulator.scenarios.results import CallResult, Check, StepResult, summarize

_MARK = {"pass": "PASS", "fail": "FAIL", "unverified": "SKIP"}


# Console


def check_line(result: CallResult, check: Check, step: StepResult | None) -> str:
    """One expectation: ``PASS  scenario  #1 say '...'  intent opening_hours: got ...``."""
    where = f"#{check.step} {step.description}" if step else f"#{check.step}"
    line = f" (line {check.line})" if check.line else ""
    return (
        f"{_MARK[check.status]}  {result.scenario}  {where}  {check.what} {check.expected}: "
        f"{check.actual}{line}"
    )


def turn_line(step: StepResult) -> str | None:
    """Per-turn figures: latency at the phone, barge-in, the server's stage breakdown."""
    parts = []
    if step.latency_ms is not None and step.index > 0:
        kind = "key press" if step.latency_kind == "dtmf" else "end of speech"
        parts.append(f"{kind} -> bot audio {step.latency_ms:.0f} ms")
    if step.barge_in is not None:
        b = step.barge_in
        if not b.bot_was_speaking:
            parts.append("barge-in: the bot was not speaking")
        else:
            stop = "-" if b.stop_ms is None else f"{b.stop_ms:.0f} ms"
            if b.wire == "sip":
                parts.append(f"barge-in: bot silent at the SIP phone after {stop}")
            else:
                clear = "no clear" if b.clear_ms is None else f"clear at {b.clear_ms:.0f} ms"
                parts.append(f"barge-in: bot silent at the phone after {stop} ({clear})")
    server = step.server_latency
    if server and server.get("stages_ms"):
        stages = ", ".join(f"{k} {v:.0f}" for k, v in server["stages_ms"].items())
        parts.append(f"server {server.get('total_ms', 0):.0f} ms [{stages}]")
    if step.snr_db is not None:
        parts.append(f"SNR {step.snr_db:.1f} dB")
    if not parts:
        return None
    return f"      #{step.index} {step.description}: " + "; ".join(parts)


def call_lines(result: CallResult, *, figures: bool = True) -> list[str]:
    """A call's block for the console."""
    verdict = "PASS" if result.passed else "FAIL"
    head = f"{verdict}  {result.scenario} ({result.name}) call {result.call_sid or '-'}"
    head += f", {result.duration_s:.1f} s"
    if result.error:
        head += f" - error: {result.error}"
    lines = [head]
    steps = {s.index: s for s in result.all_steps()}
    lines += ["  " + check_line(result, c, steps.get(c.step)) for c in result.checks]
    if figures:
        lines += [t for s in result.all_steps() if (t := turn_line(s))]
    if result.recording:
        lines.append(f"      recording: {result.recording}")
    return lines


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The totals for the console."""

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f} ms"

    c = summary["checks"]
    lines = [
        f"{summary['calls_passed']}/{summary['calls']} calls passed; "
        f"checks: {c['pass']} passed, {c['fail']} failed, {c['unverified']} unverified",
    ]
    for key, label in (
        ("turn_latency", "caller end of speech -> bot audio"),
        ("dtmf_latency", "key press -> bot audio"),
        ("barge_in_stop", "barge-in onset -> bot silent at the phone"),
    ):
        s = summary[key]
        if s["n"]:
            lines.append(
                f"{label}: n={s['n']} p50 {ms(s['p50_ms'])} p95 {ms(s['p95_ms'])} "
                f"max {ms(s['max_ms'])}"
            )
    if summary["server_stages_p50_ms"]:
        stages = ", ".join(f"{k} {v:.0f}" for k, v in summary["server_stages_p50_ms"].items())
        lines.append(f"server stages (p50 ms): {stages}")
    return lines


# JSON


def report_data(results: list[CallResult], meta: dict[str, Any]) -> dict[str, Any]:
    """The whole run as JSON-ready data."""
    return {
        "meta": meta,
        "summary": summarize(results),
        "calls": [r.to_json() for r in results],
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Save the report as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))


# HTML


def histogram(values: Sequence[float], *, title: str, bins: int = 20) -> str:
    """A latency histogram (p50 and p95 marked), or a line saying there is no data."""
    if not values:
        return f'<p class="muted">{escape(title)}: no data</p>'
    return charts.histogram(values, label=title, bins=bins)


def write_html(path: Path, data: dict[str, Any], results: list[CallResult]) -> None:
    """Save a self-contained HTML report (inline SVG histograms, no scripts)."""
    summary = data["summary"]
    speech = [
        s.latency_ms
        for r in results
        for s in r.steps
        if s.latency_ms is not None and s.latency_kind == "speech"
    ]
    barge = [
        s.barge_in.stop_ms
        for r in results
        for s in r.steps
        if s.barge_in is not None and s.barge_in.stop_ms is not None
    ]
    rows = []
    for r in results:
        verdict = "pass" if r.passed else "fail"
        rec = (
            f'<a href="{escape(_relative(r.recording, path.parent))}">wav</a>'
            if r.recording
            else ""
        )
        rows.append(
            f'<tr class="{verdict}"><td>{escape(r.scenario)}</td><td>{escape(r.name)}</td>'
            f"<td>{verdict.upper()}</td><td>{r.duration_s:.1f} s</td>"
            f"<td>{sum(c.status == 'fail' for c in r.checks)}</td><td>{rec}</td></tr>"
        )
    details = []
    for r in results:
        steps = {s.index: s for s in r.all_steps()}
        check_rows = "".join(
            f'<tr class="{c.status}"><td>{_MARK[c.status]}</td><td>#{c.step} '
            f"{escape(steps[c.step].description if c.step in steps else '')}</td>"
            f"<td>{escape(c.what)}</td><td>{escape(c.expected)}</td>"
            f"<td>{escape(c.actual)}</td><td>{c.line or ''}</td></tr>"
            for c in r.checks
        )
        turn_rows = "".join(
            f"<tr><td>#{s.index}</td><td>{escape(s.description)}</td>"
            f"<td>{_ms(s.latency_ms)}</td>"
            f"<td>{_ms(s.barge_in.stop_ms) if s.barge_in else ''}</td>"
            f"<td>{escape(_stages(s))}</td><td>{escape(s.heard)}</td></tr>"
            for s in r.all_steps()
        )
        error = f"<p class='fail'>error: {escape(r.error)}</p>" if r.error else ""
        details.append(
            f"<h3>{escape(r.scenario)}: {escape(r.name)}</h3>{error}"
            f"<table><tr><th></th><th>step</th><th>check</th><th>expected</th><th>actual</th>"
            f"<th>line</th></tr>{check_rows}</table>"
            f"<table><tr><th></th><th>step</th><th>latency</th><th>barge-in stop</th>"
            f"<th>server stages (ms)</th><th>heard</th></tr>{turn_rows}</table>"
        )
    meta = data.get("meta", {})
    started = str(meta.get("started_at", ""))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>callagent simulation</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #111827; max-width: 1100px; }}
table {{ border-collapse: collapse; margin: .5rem 0 1.5rem; width: 100%; font-size: 13px; }}
td, th {{ border-bottom: 1px solid #e5e7eb; padding: 4px 6px; text-align: left; }}
tr.fail td {{ color: #b91c1c; }} tr.unverified td {{ color: #92400e; }}
.muted {{ color: #6b7280; }} .fail {{ color: #b91c1c; }} .chart {{ width: 100%; height: auto; }}
</style></head><body>
<h1>callagent simulation</h1>
<p class="muted">{escape(str(meta.get("target", "")))} &middot; {escape(started)}</p>
<p>{"<br>".join(escape(line) for line in summary_lines(summary))}</p>
{histogram(speech, title="caller end of speech -> first bot audio at the phone")}
{histogram(barge, title="barge-in: caller onset -> bot silent at the phone", bins=10)}
<h2>Calls</h2>
<table><tr><th>scenario</th><th>name</th><th>result</th><th>duration</th><th>failed checks</th>
<th>recording</th></tr>{"".join(rows)}</table>
<h2>Details</h2>
{"".join(details)}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.0f} ms"


def _stages(step: StepResult) -> str:
    server = step.server_latency
    if not server or not server.get("stages_ms"):
        return ""
    return ", ".join(f"{k} {v:.0f}" for k, v in server["stages_ms"].items())


def _relative(path: str, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(base.resolve()))
    except ValueError:
        return Path(path).resolve().as_uri()
