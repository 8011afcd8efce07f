"""The understanding bench's report: console tables, JSON, and a self-contained HTML page.

The HTML page has no scripts and no external resources; its charts come from the one
chart module, :mod:`bot.operator.charts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jinja2 import Environment, select_autoescape

from bot.operator import charts
from simulator.understanding.outcomes import OUTCOMES
from simulator.understanding.results import GROUPINGS, RequestCall, summarize

COLUMNS = {
    "acted_right": "acted right",
    "clarified_right": "clarified (right)",
    "clarified_wrong": "clarified (wrong)",
    "repaired": "repaired",
    "acted_wrong": "ACTED WRONG",
    "no_decision": "no decision",
}
OUTCOME_COLOURS = {
    "acted_right": "#16a34a",
    "clarified_right": "#84cc16",
    "clarified_wrong": "#d97706",
    "repaired": "#6b7280",
    "acted_wrong": "#dc2626",
    "no_decision": "#111827",
}


def to_json(rows: Sequence[RequestCall], meta: dict[str, Any]) -> dict[str, Any]:
    """The run as JSON-ready data: what was run, the figures, and every call."""
    return {
        "bench": "understanding",
        **meta,
        "summary": summarize(rows),
        "calls": [r.to_json() for r in rows],
    }


# Console


def console_lines(data: dict[str, Any]) -> list[str]:
    """The figures as text tables, one block per condition."""
    lines = []
    for condition, block in data["summary"]["conditions"].items():
        lines.append(f"== {condition}: {_headline(block['overall'])}")
        lines.append(_latency_line(block["overall"]))
        if block.get("in_context", {}).get("calls"):
            lines.append(_context_line(block["in_context"]))
        for title, key in GROUPINGS:
            if key not in block:  # a run saved before the grouping was added
                continue
            lines.append("")
            lines += _table(title, block[key])
        lines.append("")
        lines.append("confusion (intended -> acted on, calls):")
        for intended, acted in block["confusion"].items():
            cells = ", ".join(f"{name} {n}" for name, n in acted.items())
            lines.append(f"  {intended:<24} {cells}")
        lines.append("")
    meta = f"{len(data['calls'])} calls in {data.get('wall_time_s', 0):.0f} s"
    lines.append(f"{meta}, {data.get('calls_at_once', '?')} at once")
    return lines


def _headline(stats: dict[str, Any]) -> str:
    r = stats["rates_pct"]
    wer = "-" if stats["wer_pct"] is None else f"{stats['wer_pct']:.1f} %"
    return (
        f"{stats['calls']} calls: acted right {r['acted_right']:.1f} %, clarified "
        f"{r['clarified_right'] + r['clarified_wrong']:.1f} %, repaired {r['repaired']:.1f} %, "
        f"ACTED WRONG {r['acted_wrong']:.1f} %, caller cut off {stats['cut_off_pct']:.1f} %, "
        f"answered in fragments {stats['fragmented_pct']:.1f} %, WER {wer}"
    )


def _latency_line(stats: dict[str, Any]) -> str:
    lat = stats["latency_complete_ms"]
    if not lat["n"]:
        return "  turn latency of complete requests: -"
    return (
        f"  turn latency of complete requests (caller end -> bot audio at the phone): "
        f"p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms (n={lat['n']})"
    )


def _context_line(stats: dict[str, Any]) -> str:
    decided = ", ".join(f"{name} {n}" for name, n in stats["context_decided"].items())
    return (
        f"  judged in context ({', '.join(stats['intents'])}): {stats['calls']} calls, "
        f"context line acted on in {stats['context_acted']} ({decided})"
    )


def _table(title: str, groups: dict[str, Any]) -> list[str]:
    head = f"  {title:<26}{'n':>4}" + "".join(f"{COLUMNS[o]:>18}" for o in COLUMNS)
    head += f"{'cut off':>9}{'split':>7}{'WER':>7}{'p50 ms':>8}"
    out = [head]
    for name, s in groups.items():
        cells = "".join(f"{s['counts'][o]:>18}" for o in COLUMNS)
        wer = "-" if s["wer_pct"] is None else f"{s['wer_pct']:.0f}%"
        p50 = s["latency_complete_ms"]["p50"]
        out.append(
            f"  {name[:26]:<26}{s['calls']:>4}{cells}{s['cut_off']:>9}{s['fragmented']:>7}{wer:>7}"
            f"{'-' if p50 is None else f'{p50:.0f}':>8}"
        )
    return out


# HTML

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Understanding bench</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#111827;max-width:1200px}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #d1d5db;padding:.2em .5em;text-align:right;font-size:.9em}
td:first-child,th:first-child{text-align:left}
.wrong{color:#dc2626;font-weight:600}
svg{max-width:100%}
</style></head><body>
<h1>Understanding bench</h1>
<p>{{ meta.requests }} requests from <code>{{ meta.request_set }}</code>
(agent <code>{{ meta.agent_file }}</code>), voices {{ meta.voices|join(", ") }};
{{ calls|length }} calls, {{ meta.calls_at_once }} at once, {{ meta.wall_time_s }} s.
Target: {{ meta.target }}.</p>
{% for condition, block in conditions.items() %}
<h2>{{ condition }}</h2>
<p>{{ headline(block.overall) }}<br>{{ latency(block.overall) }}</p>
{{ charts_of[condition] }}
{% for title, key in groupings if key in block %}
<h3>By {{ title }}</h3>
<table><tr><th>{{ title|capitalize }}</th><th>calls</th>
{% for o in columns %}<th>{{ columns[o] }}</th>{% endfor %}
<th>cut off</th><th>answered in fragments</th><th>WER</th><th>latency p50</th></tr>
{% for name, s in block[key].items() %}
<tr><td>{{ name }}</td><td>{{ s.calls }}</td>
{% for o in columns %}<td{% if o == "acted_wrong" and s.counts[o] %} class="wrong"{% endif %}>
{{ s.counts[o] }}</td>{% endfor %}
<td{% if s.cut_off %} class="wrong"{% endif %}>{{ s.cut_off }}</td>
<td{% if s.fragmented %} class="wrong"{% endif %}>{{ s.fragmented }}</td>
<td>{{ "-" if s.wer_pct is none else s.wer_pct ~ " %" }}</td>
<td>{{ "-" if s.latency_complete_ms.p50 is none else s.latency_complete_ms.p50|round|int ~ " ms" }}
</td></tr>
{% endfor %}</table>
{% endfor %}
<h3>Confusion (intended &rarr; acted on)</h3>
<table><tr><th>intended</th><th>acted on (calls)</th></tr>
{% for intended, acted in block.confusion.items() %}
<tr><td>{{ intended }}</td><td style="text-align:left">
{% for name, n in acted.items() %}<span{% if name != intended and not name.startswith("(")
 and not (intended == "out_of_scope" and name == "out_of_scope") %} class="wrong"{% endif %}>
{{ name }} {{ n }}</span>{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>
{% endfor %}</table>
{% endfor %}
<h2>Calls</h2>
<table><tr><th>request</th><th>intent</th><th>voice</th><th>condition</th><th>outcome</th>
<th>decided</th><th>band</th><th>cut off</th><th>fragments</th><th>heard</th>
<th>latency</th></tr>
{% for c in calls %}
<tr><td>{{ c.request }}</td><td>{{ c.intent }}</td><td>{{ c.voice }}</td>
<td>{{ c.condition }}</td>
<td{% if c.outcome == "acted_wrong" %} class="wrong"{% endif %}>{{ c.outcome }}</td>
<td>{{ c.decided_intent or "-" }}</td><td>{{ c.band or "-" }}</td>
<td>{{ "after " ~ c.cut_after_ms|round|int ~ " ms" if c.cut_off else "" }}</td>
<td>{{ "yes" if c.fragmented else "" }}</td>
<td style="text-align:left">{{ c.transcript or "" }}{% if c.error %} ({{ c.error }}){% endif %}</td>
<td>{{ "-" if c.latency_ms is none else c.latency_ms|round|int ~ " ms" }}</td></tr>
{% endfor %}</table>
</body></html>
"""


def html(data: dict[str, Any]) -> str:
    """The report as one self-contained HTML page."""
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    template = env.from_string(_PAGE)
    conditions = data["summary"]["conditions"]
    return template.render(
        meta=data,
        calls=data["calls"],
        conditions=conditions,
        columns=COLUMNS,
        groupings=GROUPINGS,
        headline=_headline,
        latency=_latency_line,
        charts_of={name: _charts(name, block, data["calls"]) for name, block in conditions.items()},
    )


def _charts(condition: str, block: dict[str, Any], calls: list[dict[str, Any]]) -> Any:
    """Outcome shares per intent and per voice, and the latency histogram."""
    from markupsafe import Markup

    parts = []
    for key, what in (("by_intent", "intent"), ("by_voice", "voice")):
        groups = block[key]
        labels = list(groups)
        series: dict[str, Sequence[float]] = {
            COLUMNS[o.value]: [groups[g]["rates_pct"][o.value] for g in labels] for o in OUTCOMES
        }
        colours = {COLUMNS[o.value]: OUTCOME_COLOURS[o.value] for o in OUTCOMES}
        parts.append(
            charts.stacked_bars(
                labels,
                series,
                label=f"{condition}: outcomes by {what} (%)",
                colours=colours,
                unit="%",
                width=max(640, 48 * len(labels)),
            )
        )
    latencies = [
        c["latency_ms"]
        for c in calls
        if c["condition"] == condition
        and c["latency_ms"] is not None
        and not (c["cut_off"] or c["fragmented"])
    ]
    parts.append(
        charts.histogram(latencies, label=f"{condition}: turn latency of complete requests")
    )
    return Markup("".join(str(p) for p in parts))
