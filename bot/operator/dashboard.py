"""The operator dashboard: server-rendered HTML with inline SVG charts.

No JavaScript, no CDN: every page is one HTML document and the dashboard's
style sheet, served here, so it renders offline under a strict
Content-Security-Policy. Pages are Jinja2 templates (``templates/``) with
autoescaping, so stored text (transcripts, reasons, ids) is always escaped.
Aggregates are computed in SQL by the store, so the page stays fast with
100,000+ calls.

Routes:
    GET  /dashboard                 overview (?days=30&transport=&outcome=&intent=)
    GET  /dashboard/calls/{call_id} one call, turn by turn
    GET  /dashboard/login           token form; POST it to log in (sets a session cookie);
                                    ?token=: a one-time login link (loopback servers, no token)
    POST /dashboard/logout          end the session (revoked on the server)
    GET  /dashboard/static/dashboard.css  the pages' styles (no inline style: strict CSP)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from loguru import logger

from bot.call.records import CallRecords
from bot.operator import charts
from bot.operator.auth import NOT_CONFIGURED, OperatorAuth
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
STATIC_DIR = Path(__file__).parent / "static"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("bot.operator", "templates"),
        autoescape=select_autoescape(),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.globals["outcome_colours"] = charts.OUTCOME_COLOURS
    return env


_templates = Jinja2Templates(env=_environment())


def create_dashboard_router(
    records: Callable[[], CallRecords | None], auth: OperatorAuth
) -> APIRouter:
    """The ``/dashboard`` routes."""
    router = APIRouter(prefix="/dashboard")

    async def guard(request: Request) -> Response | None:
        if not auth.configured:
            return _message(request, "Call records", NOT_CONFIGURED, 403)
        access = await auth.check(request)
        if access.granted:
            return None
        if access.retry_after_s:
            return _locked_out(request, access.retry_after_s)
        return await login_page(request, request.url.path, status=401)

    async def login_page(
        request: Request, next_path: str, *, status: int = 200, error: str = ""
    ) -> HTMLResponse:
        await auth.offer_login_link()  # loopback server without a token: a link if none is out
        return _page(
            request,
            "login.html",
            "Login",
            status,
            next_path=next_path,
            error=error,
            link_login=auth.login_links is not None,
        )

    @router.get("/static/dashboard.css", include_in_schema=False)
    async def style_sheet() -> FileResponse:
        """The pages' style sheet (public: the login page uses it)."""
        return FileResponse(STATIC_DIR / "dashboard.css", media_type="text/css")

    @router.get("", response_class=HTMLResponse)
    async def overview(
        request: Request,
        days: int = Query(30, ge=1, le=3650),
        transport: str | None = None,
        outcome: str | None = None,
        intent: str | None = None,
    ) -> Response:
        """Calls, outcomes, intents, confidence and latency over the last ``days``."""
        if (refused := await guard(request)) is not None:
            return refused
        current = records()
        if current is None:
            return _message(request, "Call records", "Call records are not enabled.", 503)
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
            context = overview_context(stats, recent, days=days, where=where)
        except Exception as e:  # noqa: BLE001 - a failing page never touches recording
            logger.error(f"dashboard: overview failed ({type(e).__name__})")
            return _message(
                request,
                "Call records",
                "The dashboard could not be built: "
                "the call-record database may be unavailable. Recording is unaffected.",
                503,
            )
        return _page(request, "overview.html", "Call records", **context)

    @router.get("/calls/{call_id}", response_class=HTMLResponse)
    async def call_page(request: Request, call_id: str) -> Response:
        """One call, turn by turn."""
        if (refused := await guard(request)) is not None:
            return refused
        current = records()
        if current is None:
            return _message(request, "Call", "Call records are not enabled.", 503)
        try:
            call = await current.store.aget_call(call_id)
        except Exception as e:  # noqa: BLE001
            logger.error(f"dashboard: call page failed ({type(e).__name__})")
            return _message(request, "Call", "The call-record database is unavailable.", 503)
        if call is None:
            raise HTTPException(404, "no such call")
        return _page(request, "call.html", f"Call {call_id}", **call_context(call))

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(
        request: Request,
        next: str = "/dashboard",  # noqa: A002
        token: str = Query("", max_length=256),
    ) -> Response:
        """The token form; with ``token``, a one-time login link (loopback servers)."""
        if not auth.configured:
            return _message(request, "Call records", NOT_CONFIGURED, 403)
        if not token:
            return await login_page(request, next)
        access = await auth.log_in(request, link=token)
        if access.retry_after_s:
            return _locked_out(request, access.retry_after_s)
        if not access.granted:
            return await login_page(
                request, next, status=401, error="That login link was used already or has expired."
            )
        response = RedirectResponse(local_path(next), status_code=303)  # drops the token
        await auth.start_session(request, response)
        return response

    @router.post("/login")
    async def login(
        request: Request,
        token: str = Form("", max_length=1024),
        next: str = Form("/dashboard"),  # noqa: A002
    ) -> Response:
        """Exchange the operator token for a session cookie."""
        if not auth.configured:
            return _message(request, "Call records", NOT_CONFIGURED, 403)
        access = await auth.log_in(request, token=token)
        if access.retry_after_s:
            return _locked_out(request, access.retry_after_s)
        if not access.granted:
            error = "That is not the operator token."
            return await login_page(request, next, status=401, error=error)
        response = RedirectResponse(local_path(next), status_code=303)
        await auth.start_session(request, response)
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        """End the session: it is revoked on the server, and its cookie cleared."""
        response = RedirectResponse("/dashboard/login", status_code=303)
        await auth.end_session(request, response)
        return response

    return router


# Pages


def _page(
    request: Request, template: str, title: str, status: int = 200, **context: Any
) -> HTMLResponse:
    return _templates.TemplateResponse(
        request,
        template,
        {"title": title, **context},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def _message(request: Request, title: str, message: str, status: int) -> HTMLResponse:
    return _page(request, "message.html", title, status, message=message)


def _locked_out(request: Request, retry_after_s: int) -> HTMLResponse:
    page = _message(
        request,
        "Login",
        f"Too many failed logins from this address: try again in {retry_after_s} s.",
        429,
    )
    page.headers["Retry-After"] = str(retry_after_s)
    return page


def local_path(target: str) -> str:
    """``target`` when it is a path on this server, else ``/dashboard`` (no open redirect)."""
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
    ):
        return "/dashboard"
    return target


def overview_context(
    stats: dict[str, Any], recent: dict[str, Any], *, days: int, where: CallFilter
) -> dict[str, Any]:
    """What the overview template shows: cards, charts, tables and the filter form."""
    totals = stats["totals"]
    per_day = stats["per_day"]
    days_labels = [d["day"][5:] for d in per_day]
    latency = stats["latency"]
    overall = latency["overall"]
    latency_days = [d["day"][5:] for d in latency["per_day"]]
    confidence = stats["confidence_histogram"]
    return {
        "days": days,
        "where": where,
        "day_options": sorted({1, 7, 30, 90, 365, days}),
        "transports": TRANSPORTS,
        "outcomes": OUTCOMES,
        "cards": [
            ("Calls", _num(totals["calls"])),
            ("Resolution rate", _pct(totals["resolution_rate"])),
            ("Escalation rate", _pct(totals["escalation_rate"])),
            ("Abandoned", _num(totals["abandoned"])),
            ("Failed", _num(totals["failed"])),
            ("In progress", _num(totals["in_progress"])),
            ("Avg duration", f"{_num(totals['avg_duration_secs'], 1)} s"),
            ("Avg caller turns", _num(totals["avg_turns"], 2)),
        ],
        "charts": [
            (
                "Calls per day, by outcome",
                charts.stacked_bars(
                    days_labels,
                    {
                        name: [d[name] for d in per_day]
                        for name in ("resolved", "escalated", "abandoned", "failed")
                    },
                    label="calls per day by outcome",
                    colours=charts.OUTCOME_COLOURS,
                ),
            ),
            (
                "Resolution and escalation rate per day",
                charts.line_chart(
                    days_labels,
                    {
                        "resolution": [_times100(d["resolution_rate"]) for d in per_day],
                        "escalation": [_times100(d["escalation_rate"]) for d in per_day],
                    },
                    label="resolution and escalation rate per day",
                    unit="%",
                    top=100.0,
                    colours={"resolution": "#16a34a", "escalation": "#d97706"},
                ),
            ),
            (
                "Escalation reasons",
                charts.horizontal_bars(
                    [(r["reason"], r["count"]) for r in stats["escalation_reasons"]],
                    label="escalation reasons",
                    colour="#d97706",
                ),
            ),
            (
                "Intent distribution (caller turns)",
                charts.horizontal_bars(
                    [(r["intent"], r["count"]) for r in stats["intents"]],
                    label="intent distribution",
                ),
            ),
            (
                "NLU confidence (caller turns, by band)",
                charts.stacked_bars(
                    [f"{b['low']:.2f}" for b in confidence],
                    {band: [b[band] for b in confidence] for band in ("act", "clarify", "repair")},
                    label="confidence histogram",
                    colours={"act": "#16a34a", "clarify": "#d97706", "repair": "#dc2626"},
                ),
            ),
        ],
        "latency_rows": [
            (
                STAGE_LABELS[s],
                _num((overall.get(s) or {}).get("p50"), 1),
                _num((overall.get(s) or {}).get("p95"), 1),
            )
            for s in LATENCY_STAGES
            if s in overall
        ],
        "latency_charts": [
            (
                STAGE_LABELS[stage],
                charts.line_chart(
                    latency_days,
                    {
                        q: [(d["stages"].get(stage) or {}).get(q) for d in latency["per_day"]]
                        for q in ("p50", "p95")
                    },
                    label=f"{stage} latency p50 and p95 per day",
                    unit=" ms",
                    colours={"p50": "#2563eb", "p95": "#dc2626"},
                    height=170,
                ),
            )
            for stage in LATENCY_STAGES
            if any(stage in d["stages"] for d in latency["per_day"])
        ],
        "slowest": [
            {**t, "stage_bar": charts.stage_bar(t["stages_ms"])} for t in stats["slowest_turns"]
        ],
        "calls": recent["calls"],
        "total": recent["total"],
    }


def _times100(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def call_context(call: dict[str, Any]) -> dict[str, Any]:
    """What the call template shows: the call and its turns with their latency bars."""
    return {
        "call": call,
        "turns": [
            {
                **t,
                "stage_bar": charts.stage_bar(t["stages_ms"]),
                "stage_text": ", ".join(
                    f"{name} {value:.0f}" for name, value in t["stages_ms"].items() if value
                ),
            }
            for t in call["turns"]
        ],
    }
