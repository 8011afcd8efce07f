"""JSON API over outbound campaigns and the do-not-call list (operator token required).

Routes:
    POST   /api/campaigns                  create: JSON ``{"agent", "name"?, "rules"?, "rows"}``,
                                           or a ``text/csv`` body with the rules as query
                                           parameters (``agent``, ``name``, ``window`` (repeat),
                                           ``timezone``, ``holidays``, ``max_concurrent``,
                                           ``cps``, ``retry`` (repeat), ``from_number``,
                                           ``webhook``) -> 201 ``{id, imported, problems}``
    GET    /api/campaigns                  campaigns with progress (``?state=``)
    GET    /api/campaigns/{id}             one campaign: rules and progress
    GET    /api/campaigns/{id}/contacts    per-contact results (``?state=&limit=&offset=``)
    POST   /api/campaigns/{id}/pause|resume|cancel
    GET    /api/campaigns/{id}/export      ``?format=csv|jsonl``
    GET    /api/dnc                        the do-not-call list (``?limit=&offset=``)
    POST   /api/dnc                        ``{"phone": ...}`` or ``{"phones": [...]}``
    DELETE /api/dnc?phone=                 take a number off

Bad input is a 4xx naming the parameter (rows refused are listed by line and reason,
never echoed); a database failure is a 503. Logs carry ids and sizes only.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from loguru import logger
from sqlalchemy import Engine

from bot.call.records import CallRecords
from bot.operator.auth import OperatorAuth
from integrations.outbound.campaign_types import (
    CAMPAIGN_STATES,
    CONTACT_STATES,
    CampaignError,
    CampaignNotFound,
    CampaignStateError,
)
from integrations.outbound.campaigns import CampaignStore
from integrations.outbound.contacts_csv import MAX_ROWS, ContactsError
from integrations.outbound.export import RESULT_EXPORTERS
from integrations.outbound.retries import RetryPolicy, RetryRuleError
from integrations.outbound.rules import CampaignRules, RulesError
from integrations.outbound.store import OutboundStoreError
from integrations.outbound.windows import WindowError, parse_window_flag

MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_DNC_BATCH = 10_000
QUERY_NAMES = {
    "windows": "window",
    "calls_per_second": "cps",
    "retries": "retry",
    "result_webhook_url": "webhook",
}
"""A rule's query parameter, where it differs from the rule's name (CSV uploads)."""


def no_op(_campaign_id: str) -> None:
    """The default ``on_campaign_changed``: nothing to tell."""


class CampaignStores:
    """One campaign store per call-record engine (its rule cache lives as long)."""

    def __init__(self, records: Callable[[], CallRecords | None]):
        """Find the engine through ``records`` (None when recording is off: 503)."""
        self._records = records
        self._store: CampaignStore | None = None
        self._engine: Engine | None = None

    def __call__(self) -> CampaignStore:
        """The store (raises 503 when call records are off)."""
        current = self._records()
        if current is None:
            raise HTTPException(503, "call records are not enabled on this server")
        engine = current.store.engine
        if self._store is None or self._engine is not engine:
            self._store, self._engine = CampaignStore(engine), engine
        return self._store


def create_campaigns_router(
    records: Callable[[], CallRecords | None],
    auth: OperatorAuth,
    agent_variables: Callable[[str], tuple[str, ...]],
    on_campaign_changed: Callable[[str], None] = no_op,
    dial_problem: Callable[[], str | None] = lambda: None,
) -> APIRouter:
    """The ``/api/campaigns`` and ``/api/dnc`` routes.

    Args:
        records: Returns the process's call records (None when recording is off).
        auth: The operator token check.
        agent_variables: An agent key -> the variables its script needs (ValueError when
            there is no such agent).
        on_campaign_changed: Told a campaign's id after it is created or resumed (the job
            queue looks at it at once).
        dial_problem: Why this deployment's campaigns cannot dial (None: they can); said in
            the answer to a create, so a campaign is never silently left undialled.
    """
    router = APIRouter(dependencies=[Depends(auth.require)])
    stores = CampaignStores(records)

    @router.post("/api/campaigns", status_code=201)
    async def create_campaign(request: Request) -> dict[str, Any]:
        """Create and start a campaign from JSON rows or a CSV upload."""
        body = await _body(request)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind in ("text/csv", "application/csv", "text/plain"):
            agent, name, rules = _rules_from_query(request)
            payload: Any = _text(body)
        elif kind == "application/json":
            agent, name, rules, payload = _from_json(body)
        else:
            raise HTTPException(415, "send application/json (rows) or text/csv")
        try:
            required = agent_variables(agent)
        except ValueError as e:
            raise HTTPException(422, f"agent: {e}") from None
        store = stores()

        def create() -> Any:
            if isinstance(payload, str):
                return store.create_from_csv(name, rules, payload, required=required)
            return store.create_from_rows(name, rules, payload, required=required)

        try:
            info, problems = await _db(asyncio.to_thread(create))
        except ContactsError as e:
            raise HTTPException(422, f"body: {e}") from None
        except CampaignError as e:
            raise HTTPException(422, f"rows: {e}") from None
        logger.info(f"campaign {info.id}: created over the API ({len(problems)} rows refused)")
        on_campaign_changed(info.id)
        return {
            "id": info.id,
            "imported": info.progress.total,
            "problems": [p.as_json() for p in problems],
            "campaign": info.as_json(),
            "dialling": dial_problem() or "queued",
        }

    @router.get("/api/campaigns")
    async def list_campaigns(
        state: str | None = None, limit: int = Query(100, ge=1, le=1000)
    ) -> dict[str, Any]:
        """Campaigns, newest first, with their progress."""
        if state is not None and state not in CAMPAIGN_STATES:
            raise HTTPException(422, f"state must be one of {', '.join(CAMPAIGN_STATES)}")
        found = await _db(asyncio.to_thread(stores().campaigns, state=state, limit=limit))
        return {"campaigns": [c.as_json() for c in found]}

    @router.get("/api/campaigns/{campaign_id}")
    async def get_campaign(campaign_id: str) -> dict[str, Any]:
        """One campaign: its rules and progress."""
        return (await _db(asyncio.to_thread(stores().campaign, campaign_id))).as_json()

    @router.get("/api/campaigns/{campaign_id}/contacts")
    async def campaign_contacts(
        campaign_id: str,
        state: str | None = None,
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=10_000_000),
    ) -> dict[str, Any]:
        """A page of contacts with their results."""
        if state is not None and state not in CONTACT_STATES:
            raise HTTPException(422, f"state must be one of {', '.join(CONTACT_STATES)}")
        found = await _db(
            asyncio.to_thread(
                stores().contacts, campaign_id, state=state, limit=limit, offset=offset
            )
        )
        return {"contacts": [c.as_json() for c in found], "offset": offset, "limit": limit}

    @router.post("/api/campaigns/{campaign_id}/{action}")
    async def move_campaign(campaign_id: str, action: str) -> dict[str, Any]:
        """Pause, resume or cancel."""
        if action not in ("pause", "resume", "cancel"):
            raise HTTPException(404, "no such action (pause, resume, cancel)")
        info = await _db(asyncio.to_thread(getattr(stores(), action), campaign_id))
        if action == "resume":
            on_campaign_changed(info.id)
        return info.as_json()

    @router.get("/api/campaigns/{campaign_id}/export")
    async def export_campaign(campaign_id: str, format: str = "csv") -> Response:  # noqa: A002
        """Per-contact results as CSV or JSON lines."""
        if format not in RESULT_EXPORTERS:
            raise HTTPException(422, f"format must be one of {', '.join(RESULT_EXPORTERS)}")
        exporter = RESULT_EXPORTERS[format]()
        store = stores()

        def export() -> str:
            out = io.StringIO()
            exporter.write(store.iter_contacts(campaign_id), out)
            return out.getvalue()

        text = await _db(asyncio.to_thread(export))
        filename = f"{campaign_id}.{format}"
        return Response(
            text,
            media_type=exporter.media_type,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @router.get("/api/dnc")
    async def list_dnc(
        limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=10_000_000)
    ) -> dict[str, Any]:
        """The do-not-call list, newest first."""
        outbound = stores().outbound

        def read() -> tuple[Any, int]:
            return outbound.dnc_list(limit=limit, offset=offset), outbound.dnc_count()

        entries, total = await _db(asyncio.to_thread(read))
        return {
            "total": total,
            "numbers": [
                {"phone": e.phone, "source": e.source, "added_at": e.added_at.isoformat() + "Z"}
                for e in entries
            ],
        }

    @router.post("/api/dnc", status_code=201)
    async def add_dnc(request: Request) -> dict[str, Any]:
        """Add ``phone`` or every one of ``phones``; ``invalid`` lists the indexes refused."""
        data = _json(await _body(request))
        if not isinstance(data, dict):
            raise HTTPException(422, 'body: a JSON object {"phone": ...} or {"phones": [...]}')
        phones = data.get("phones", [data["phone"]] if "phone" in data else None)
        if not isinstance(phones, list) or not phones or len(phones) > MAX_DNC_BATCH:
            raise HTTPException(422, f"phones: a list of 1 to {MAX_DNC_BATCH} numbers")
        if not all(isinstance(p, str) for p in phones):
            raise HTTPException(422, "phones: numbers are text")
        outbound = stores().outbound
        added, invalid = await _db(asyncio.to_thread(outbound.dnc_add_many, phones, "api"))
        if "phone" in data and invalid:
            raise HTTPException(422, "phone: not a phone number (E.164, e.g. +15555550123)")
        return {"added": added, "invalid": invalid}

    @router.delete("/api/dnc")
    async def remove_dnc(phone: str = Query(..., max_length=64)) -> dict[str, Any]:
        """Take ``phone`` off the list (404 when it was not on it)."""
        try:
            removed = await _db(asyncio.to_thread(stores().outbound.dnc_remove, phone))
        except OutboundStoreError as e:
            raise HTTPException(422, f"phone: {e}") from None
        if not removed:
            raise HTTPException(404, "that number is not on the do-not-call list")
        return {"removed": True}

    return router


async def _body(request: Request) -> bytes:
    """The request body, at most :data:`MAX_BODY_BYTES` (413 beyond)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, f"body: at most {MAX_BODY_BYTES // 1024 // 1024} MB")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPException(413, f"body: at most {MAX_BODY_BYTES // 1024 // 1024} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise HTTPException(422, "body: the CSV must be UTF-8 text") from None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise HTTPException(422, "body: not valid JSON") from None


def _from_json(body: bytes) -> tuple[str, str, CampaignRules, list[Any]]:
    data = _json(body)
    if not isinstance(data, dict):
        raise HTTPException(422, 'body: a JSON object {"agent", "rows", "rules"?, "name"?}')
    agent, name, rows = data.get("agent"), data.get("name", ""), data.get("rows")
    rules = data.get("rules", {})
    if not isinstance(agent, str) or not agent:
        raise HTTPException(422, "agent: the agent key (e.g. appointment_reminders)")
    if not isinstance(name, str):
        raise HTTPException(422, "name: text")
    if not isinstance(rows, list) or not rows:
        raise HTTPException(422, 'rows: a list of contacts ({"phone": ..., variables...})')
    if len(rows) > MAX_ROWS:
        raise HTTPException(422, f"rows: at most {MAX_ROWS} contacts per campaign")
    if not all(isinstance(r, dict) for r in rows):
        raise HTTPException(422, "rows: each contact is a JSON object")
    if not isinstance(rules, dict):
        raise HTTPException(422, "rules: a JSON object")
    try:
        return agent, name, CampaignRules.from_json(agent, rules), rows
    except RulesError as e:
        raise HTTPException(422, f"rules.{e.field}: {e.reason}") from None


def _rules_from_query(request: Request) -> tuple[str, str, CampaignRules]:
    query = request.query_params
    agent = query.get("agent", "")
    if not agent:
        raise HTTPException(422, "agent: the agent key (e.g. appointment_reminders)")
    values: dict[str, Any] = {}
    try:
        windows: dict[str, list[str]] = {}
        for text in query.getlist("window"):
            days, spans = parse_window_flag(text)
            windows.setdefault(days, []).extend(spans)
        if windows:
            values["windows"] = windows
        if query.getlist("retry"):
            values["retries"] = RetryPolicy.parse(query.getlist("retry"))
    except WindowError as e:
        raise HTTPException(422, f"window: {e}") from None
    except RetryRuleError as e:
        raise HTTPException(422, f"retry: {e}") from None
    for param, rule, kind in (
        ("timezone", "timezone", str),
        ("holidays", "holidays", str),
        ("from_number", "from_number", str),
        ("webhook", "result_webhook_url", str),
        ("max_concurrent", "max_concurrent", int),
        ("cps", "calls_per_second", float),
    ):
        if param in query:
            try:
                values[rule] = kind(query[param])
            except ValueError:
                raise HTTPException(422, f"{param}: expected a {kind.__name__}") from None
    try:
        return agent, query.get("name", ""), CampaignRules(agent=agent, **values)
    except RulesError as e:
        raise HTTPException(422, f"{QUERY_NAMES.get(e.field, e.field)}: {e.reason}") from None


async def _db(awaitable: Any) -> Any:
    """Await a store call: unknown campaign 404, wrong state 409, database failure 503."""
    try:
        return await awaitable
    except HTTPException:
        raise
    except CampaignNotFound as e:
        raise HTTPException(404, str(e)) from None
    except CampaignStateError as e:
        raise HTTPException(409, str(e)) from None
    except (ContactsError, CampaignError, OutboundStoreError):
        raise
    except Exception as e:  # noqa: BLE001
        logger.error(f"campaigns API: database call failed ({type(e).__name__})")
        raise HTTPException(503, "the call-record database is unavailable") from None
