"""The operator dashboard: server-rendered HTML with inline SVG charts.

No JavaScript library, no CDN, no external file: every page is one HTML
document that renders offline. Aggregates are computed in SQL by the store, so
the page stays fast with 100,000+ calls.

Routes:
    GET  /dashboard                 overview (?days=30&transport=&outcome=&intent=)
    GET  /dashboard/calls/{call_id} one call, turn by turn
    GET  /dashboard/login           token form; POST it to log in (sets a session cookie)
    POST /dashboard/logout          forget the session
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from loguru import logger

from bot.call.records import CallRecords
from bot.operator import charts
from bot.operator.auth import COOKIE, NOT_CONFIGURED, OperatorAuth
from integrations.storage import CallFilter, parse_time
from integrations.storage.queries import OUTCOMES
from integrations.storage.records import STAGES

LATENCY_STAGES = ("total", *STAGES)
STAGE_LABELS = {
    "total": "Total (caller stop → bot audio)",
    "endpointing": "Endpointing (VAD + end of turn)",
    "stt": "Speech-to-text",
    "nlu": "NLU",
    "llm": "Dialogue / LLM",
    "tts": "TTS first audio",
    "transport": "Transport",
    "other": "Other pipeline",
}
TRANSPORTS = ("twilio", "webrtc", "daily", "livekit")

_CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f9fafb;color:#111827}
header{background:#111827;color:#fff;padding:12px 24px;display:flex;gap:16px;align-items:center}
header h1{font-size:18px;margin:0;flex:1}header a{color:#93c5fd}
main{padding:16px 24px;max-width:1280px;margin:auto}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:12px}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px}
.card b{display:block;font-size:22px}.card span{color:#6b7280;font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:16px;margin-top:16px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px}
section h2{font-size:14px;margin:0 0 8px}
.chart{width:100%;height:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid #f3f4f6;vertical-align:top}
th{color:#6b7280;font-weight:600}
form.filters{display:flex;gap:8px;align-items:end;flex-wrap:wrap;margin-bottom:12px}
form.filters label{font-size:12px;color:#6b7280;display:flex;flex-direction:column}
.badge{display:inline-block;padding:1px 6px;border-radius:8px;font-size:11px;color:#fff}
.muted{color:#6b7280}.error{color:#b91c1c}
button,input,select{font:inherit}
"""


def create_dashboard_router(
    records: Callable[[], CallRecords | None], auth: OperatorAuth
) -> APIRouter:
    """The ``/dashboard`` routes."""
    router = APIRouter(prefix="/dashboard")

    def guard(request: Request) -> Response | None:
        if not auth.configured:
            return _page("Call records", f'<p class="error">{escape(NOT_CONFIGURED)}</p>', 403)
        if not auth.allowed(request):
            return _login_page(request.url.path, status=401)
        return None

    @router.get("", response_class=HTMLResponse)
    async def overview(
        request: Request,
        days: int = Query(30, ge=1, le=3650),
        transport: str | None = None,
        outcome: str | None = None,
        intent: str | None = None,
    ) -> Response:
        """Calls, outcomes, intents, confidence and latency over the last ``days``."""
        if (refused := guard(request)) is not None:
            return refused
        current = records()
        if current is None:
            return _page("Call records", '<p class="error">Call records are not enabled.</p>', 503)
        if outcome and outcome not in OUTCOMES:
            outcome = None
        where = CallFilter(
            since=parse_time(f"{days}d"),
            outcome=outcome or None,
            intent=intent or None,
            transport=transport or None,
        )
        try:
            stats = await current.store.astats(where)
            recent = await current.store.alist_calls(where, limit=20)
            body = render_overview(stats, recent, days=days, where=where)
        except Exception as e:  # noqa: BLE001 - a failing page never touches recording
            logger.error(f"dashboard: overview failed ({type(e).__name__})")
            return _page(
                "Call records",
                '<p class="error">The dashboard could not be built: '
                "the call-record database may be unavailable. Recording is unaffected."
                "</p>",
                503,
            )
        return _page("Call records", body)

    @router.get("/calls/{call_id}", response_class=HTMLResponse)
    async def call_page(request: Request, call_id: str) -> Response:
        """One call, turn by turn."""
        if (refused := guard(request)) is not None:
            return refused
        current = records()
        if current is None:
            return _page("Call", '<p class="error">Call records are not enabled.</p>', 503)
        try:
            call = await current.store.aget_call(call_id)
        except Exception as e:  # noqa: BLE001
            logger.error(f"dashboard: call page failed ({type(e).__name__})")
            return _page(
                "Call", '<p class="error">The call-record database is unavailable.</p>', 503
            )
        if call is None:
            raise HTTPException(404, "no such call")
        return _page(f"Call {call_id}", render_call(call))

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(next: str = "/dashboard") -> Response:  # noqa: A002 - query name
        """The token form."""
        if not auth.configured:
            return _page("Call records", f'<p class="error">{escape(NOT_CONFIGURED)}</p>', 403)
        return _login_page(next)

    @router.post("/login")
    async def login(
        request: Request, token: str = Form(""), next: str = Form("/dashboard")
    ) -> Response:  # noqa: A002
        """Exchange the operator token for a session cookie."""
        if not auth.configured:
            return _page("Call records", f'<p class="error">{escape(NOT_CONFIGURED)}</p>', 403)
        if not auth.check_token(token.strip()):
            return _login_page(next, status=401, error="That is not the operator token.")
        target = next if next.startswith("/dashboard") else "/dashboard"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            auth.session_value(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https"
            or request.headers.get("x-forwarded-proto") == "https",
            path="/",
        )
        return response

    @router.post("/logout")
    async def logout() -> Response:
        """Forget the session cookie."""
        response = RedirectResponse("/dashboard/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    return router


# Pages


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)} · callagent</title><style>{_CSS}</style></head><body>"
        f'<header><h1>callagent · {escape(title)}</h1><a href="/dashboard">Overview</a>'
        '<form method=post action="/dashboard/logout" style="margin:0">'
        "<button type=submit>Log out</button></form></header>"
        f"<main>{body}</main></body></html>"
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _login_page(next_path: str, *, status: int = 200, error: str = "") -> HTMLResponse:
    message = f'<p class="error">{escape(error)}</p>' if error else ""
    body = (
        "<section style='max-width:420px'><h2>Operator login</h2>"
        "<p class=muted>Enter the value of CALLAGENT_OPERATOR_TOKEN.</p>"
        f"{message}<form method=post action='/dashboard/login'>"
        f"<input type=hidden name=next value='{escape(next_path, quote=True)}'>"
        "<input type=password name=token autocomplete=current-password autofocus "
        "style='width:100%;margin-bottom:8px'>"
        "<button type=submit>Log in</button></form></section>"
    )
    return _page("Login", body, status)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def render_overview(
    stats: dict[str, Any], recent: dict[str, Any], *, days: int, where: CallFilter
) -> str:
    """The overview page body."""
    totals = stats["totals"]
    per_day = stats["per_day"]
    days_labels = [d["day"][5:] for d in per_day]
    cards = [
        ("Calls", _num(totals["calls"])),
        ("Resolution rate", _pct(totals["resolution_rate"])),
        ("Escalation rate", _pct(totals["escalation_rate"])),
        ("Abandoned", _num(totals["abandoned"])),
        ("Failed", _num(totals["failed"])),
        ("In progress", _num(totals["in_progress"])),
        ("Avg duration", f"{_num(totals['avg_duration_secs'], 1)} s"),
        ("Avg caller turns", _num(totals["avg_turns"], 2)),
    ]
    latency = stats["latency"]
    overall = latency["overall"]
    latency_rows = "".join(
        f"<tr><td>{escape(STAGE_LABELS[s])}</td>"
        f"<td>{_num((overall.get(s) or {}).get('p50'), 1)}</td>"
        f"<td>{_num((overall.get(s) or {}).get('p95'), 1)}</td></tr>"
        for s in LATENCY_STAGES
        if s in overall
    )
    latency_days = [d["day"][5:] for d in latency["per_day"]]
    latency_charts = "".join(
        f"<section><h2>{escape(STAGE_LABELS[stage])}: p50 / p95 (ms)</h2>"
        + charts.line_chart(
            latency_days,
            {
                "p50": [(d["stages"].get(stage) or {}).get("p50") for d in latency["per_day"]],
                "p95": [(d["stages"].get(stage) or {}).get("p95") for d in latency["per_day"]],
            },
            label=f"{stage} latency p50 and p95 per day",
            unit=" ms",
            colours={"p50": "#2563eb", "p95": "#dc2626"},
            height=170,
        )
        + "</section>"
        for stage in LATENCY_STAGES
        if any(stage in d["stages"] for d in latency["per_day"])
    )
    slowest = "".join(
        f"<tr><td><a href='/dashboard/calls/{quote(t['call_id'])}#turn-{t['seq']}'>"
        f"{escape(t['call_id'])}</a> #{t['seq']}</td><td>{escape(t['started_at'] or '')}</td>"
        f"<td>{escape(t['intent'] or '–')}</td><td><b>{_num(t['latency_ms'], 0)}</b></td>"
        f"<td>{charts.stage_bar(t['stages_ms'])}</td></tr>"
        for t in stats["slowest_turns"]
    )
    recent_rows = "".join(_call_row(c) for c in recent["calls"])
    confidence = stats["confidence_histogram"]
    return (
        _filters(days, where)
        + "<div class=cards>"
        + "".join(
            f"<div class=card><b>{escape(v)}</b><span>{escape(k)}</span></div>" for k, v in cards
        )
        + "</div><div class=grid>"
        + "<section><h2>Calls per day, by outcome</h2>"
        + charts.stacked_bars(
            days_labels,
            {
                name: [d[name] for d in per_day]
                for name in ("resolved", "escalated", "abandoned", "failed")
            },
            label="calls per day by outcome",
            colours=charts.OUTCOME_COLOURS,
        )
        + "</section><section><h2>Resolution and escalation rate per day</h2>"
        + charts.line_chart(
            days_labels,
            {
                "resolution": [_times100(d["resolution_rate"]) for d in per_day],
                "escalation": [_times100(d["escalation_rate"]) for d in per_day],
            },
            label="resolution and escalation rate per day",
            unit="%",
            top=100.0,
            colours={"resolution": "#16a34a", "escalation": "#d97706"},
        )
        + "</section><section><h2>Escalation reasons</h2>"
        + charts.horizontal_bars(
            [(r["reason"], r["count"]) for r in stats["escalation_reasons"]],
            label="escalation reasons",
            colour="#d97706",
        )
        + "</section><section><h2>Intent distribution (caller turns)</h2>"
        + charts.horizontal_bars(
            [(r["intent"], r["count"]) for r in stats["intents"]], label="intent distribution"
        )
        + "</section><section><h2>NLU confidence (caller turns, by band)</h2>"
        + charts.stacked_bars(
            [f"{b['low']:.2f}" for b in confidence],
            {band: [b[band] for b in confidence] for band in ("act", "clarify", "repair")},
            label="confidence histogram",
            colours={"act": "#16a34a", "clarify": "#d97706", "repair": "#dc2626"},
        )
        + "</section><section><h2>Turn latency by stage (ms, whole window)</h2>"
        + f"<table><tr><th>Stage</th><th>p50</th><th>p95</th></tr>{latency_rows}</table></section>"
        + latency_charts
        + "</div><section style='margin-top:16px'><h2>Slowest turns</h2>"
        + "<table><tr><th>Call</th><th>Started (UTC)</th><th>Intent</th><th>ms</th>"
        + f"<th>Stages</th></tr>{slowest}</table></section>"
        + "<section style='margin-top:16px'><h2>Recent calls</h2>"
        + f"<p class=muted>{_num(recent['total'])} calls match; JSON at "
        + "<code>/api/calls</code>.</p>"
        + _calls_table(recent_rows)
        + "</section>"
    )


def _times100(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def _filters(days: int, where: CallFilter) -> str:
    def options(values: tuple[str, ...], chosen: str | None) -> str:
        return "<option value=''>any</option>" + "".join(
            f"<option{' selected' if v == chosen else ''}>{escape(v)}</option>" for v in values
        )

    day_options = "".join(
        f"<option value={d}{' selected' if d == days else ''}>last {d} days</option>"
        for d in sorted({1, 7, 30, 90, 365, days})
    )
    return (
        "<form class=filters method=get action='/dashboard'>"
        f"<label>Window<select name=days>{day_options}</select></label>"
        "<label>Transport<select name=transport>"
        f"{options(TRANSPORTS, where.transport)}</select></label>"
        f"<label>Outcome<select name=outcome>{options(OUTCOMES, where.outcome)}</select></label>"
        f"<label>Intent<input name=intent value='{escape(where.intent or '', quote=True)}'></label>"
        "<button type=submit>Apply</button></form>"
    )


def _badge(outcome: str) -> str:
    colour = charts.OUTCOME_COLOURS.get(outcome, "#2563eb")
    return f"<span class=badge style='background:{colour}'>{escape(outcome)}</span>"


def _call_row(c: dict[str, Any]) -> str:
    return (
        f"<tr><td><a href='/dashboard/calls/{quote(c['id'])}'>{escape(c['id'])}</a></td>"
        f"<td>{escape(c['started_at'] or '')}</td><td>{escape(c['transport'] or '')}</td>"
        f"<td>{_badge(c['outcome'])}</td><td>{escape(c['end_reason'] or '')}</td>"
        f"<td>{_num(c['duration_secs'], 1)}</td><td>{c['turn_count']}</td>"
        f"<td>{escape(c['primary_intent'] or '–')}</td></tr>"
    )


def _calls_table(rows: str) -> str:
    return (
        "<table><tr><th>Call</th><th>Started (UTC)</th><th>Transport</th><th>Outcome</th>"
        "<th>End reason</th><th>Seconds</th><th>Turns</th><th>Intent</th></tr>"
        f"{rows}</table>"
    )


def render_call(call: dict[str, Any]) -> str:
    """One call's page body."""
    facts = [
        ("Outcome", _badge(call["outcome"])),
        ("End reason", escape(call["end_reason"] or "–")),
        ("Started (UTC)", escape(call["started_at"] or "")),
        ("Duration", f"{_num(call['duration_secs'], 1)} s"),
        ("Transport", escape(f"{call['transport']} ({call['direction']})")),
        ("Caller (as stored)", escape(call["caller"] or "–")),
        ("Agent", escape(call["agent"] or "–")),
        ("CRM prefetch", f"{_num(call['crm_prefetch_ms'], 0)} ms"),
    ]
    escalation = call.get("escalation")
    escalation_html = ""
    if escalation:
        summary = "".join(
            f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>"
            for k, v in (escalation.get("summary") or {}).items()
        )
        escalation_html = (
            "<section style='margin-top:16px'><h2>Escalation</h2><table>"
            f"<tr><th>Trigger</th><td>{escape(escalation.get('trigger') or '–')}</td></tr>"
            f"<tr><th>Reason</th><td>{escape(escalation.get('reason') or '–')}</td></tr>"
            f"<tr><th>Transfer</th><td>{escape(escalation.get('transfer_result') or '–')}</td></tr>"
            f"{summary}</table></section>"
        )
    turns = "".join(_turn_row(t) for t in call["turns"])
    return (
        "<section><table>"
        + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
        + "</table></section>"
        + escalation_html
        + "<section style='margin-top:16px'><h2>Turns</h2><table><tr><th>#</th><th>Caller</th>"
        "<th>Bot</th><th>NLU</th><th>Latency (ms)</th></tr>"
        + turns
        + "</table></section>"
        + f"<p class=muted>JSON: <code>/api/calls/{escape(call['id'])}</code></p>"
    )


def _turn_row(t: dict[str, Any]) -> str:
    nlu = "–"
    if t["intent"]:
        nlu = (
            f"{escape(t['intent'])} {_num(t['confidence'], 2)} · {escape(t['band'] or '')} · "
            f"{escape(t['path'] or '')}"
        )
        if t["runner_up"]:
            nlu += f"<br><span class=muted>runner-up {escape(t['runner_up'])}</span>"
        if t["entities"]:
            nlu += (
                "<br><span class=muted>"
                + escape(", ".join(f"{k}" for k in t["entities"]))
                + "</span>"
            )
    interrupted = (
        " <span class=badge style='background:#7c3aed'>interrupted</span>"
        if t["interrupted"]
        else ""
    )
    stage_text = ", ".join(f"{name} {value:.0f}" for name, value in t["stages_ms"].items() if value)
    return (
        f"<tr id='turn-{t['seq']}'><td>{t['seq']}<br>"
        f"<span class=muted>{escape(t['kind'])}</span></td>"
        f"<td>{escape(t['caller_text'] or '')}</td>"
        f"<td>{escape(t['bot_text'] or '')}{interrupted}</td>"
        f"<td>{nlu}</td><td><b>{_num(t['latency_ms'], 0)}</b> {charts.stage_bar(t['stages_ms'])}"
        f"<br><span class=muted>{escape(stage_text)}</span></td></tr>"
    )
