"""A local stand-in for HubSpot's CRM v3 objects API, answering like the documented API.

Serves ``POST /crm/v3/objects/{type}/search`` (filterGroups ORed, filters ANDed; EQ, NEQ,
GTE, LTE, ``associations.contact``; sorts; limit; properties), ``POST /crm/v3/objects/{type}``
(create with associations) and ``PATCH /crm/v3/objects/{type}/{id}``, with Bearer auth and
HubSpot-shaped error bodies. Objects live in memory; every request is recorded.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from simulator.loopback import LoopbackServer

OBJECT_TYPES = {"contacts", "meetings", "calls", "tickets", "tasks"}
_ALIASES = {
    "0-1": "contacts",
    "0-5": "tickets",
    "0-47": "meetings",
    "0-48": "calls",
    "0-27": "tasks",
}


@dataclass
class HubSpotObject:
    id: str
    properties: dict[str, str]
    contact_ids: set[str] = field(default_factory=set)
    created: str = field(default_factory=lambda: _now())


@dataclass
class Recorded:
    method: str
    path: str
    body: Any
    status: int


class FakeHubSpot(LoopbackServer):
    """HubSpot's CRM objects API on a loopback port."""

    def __init__(
        self,
        token: str,
        *,
        fail_next: int = 0,
        fail_status: int = 503,
        stall_next: int = 0,
        stall_s: float = 0.5,
    ):
        self.token = token
        self.objects: dict[str, dict[str, HubSpotObject]] = {t: {} for t in OBJECT_TYPES}
        self.requests: list[Recorded] = []
        self.fail_next = fail_next
        self.fail_status = fail_status
        self.stall_next = stall_next
        self.stall_s = stall_s
        self._ids = itertools.count(1001)

    @property
    def base_url(self) -> str:
        return self.origin

    def add(
        self, object_type: str, properties: dict[str, str], contacts: tuple[str, ...] = ()
    ) -> str:
        oid = str(next(self._ids))
        self.objects[object_type][oid] = HubSpotObject(oid, dict(properties), set(contacts))
        return oid

    def routes(self, app: web.Application) -> None:
        """Serve search, create and update."""
        app.router.add_post("/crm/v3/objects/{type}/search", self._search)
        app.router.add_post("/crm/v3/objects/{type}", self._create)
        app.router.add_patch("/crm/v3/objects/{type}/{id}", self._update)

    # Handlers

    async def _guard(self, request: web.Request, body: Any) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.requests.append(Recorded(request.method, request.path, body, 401))
            return _error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found.")
        if self.fail_next > 0:
            self.fail_next -= 1
            self.requests.append(Recorded(request.method, request.path, body, self.fail_status))
            return _error(self.fail_status, "INTERNAL_ERROR", "Temporarily unavailable")
        if self.stall_next > 0:  # answered late: the client's timeout fires first
            self.stall_next -= 1
            self.requests.append(Recorded(request.method, request.path, body, 0))
            await asyncio.sleep(self.stall_s)
        object_type = _type(request)
        if object_type not in OBJECT_TYPES:
            return _error(404, "OBJECT_NOT_FOUND", "Unknown object type")
        return None

    async def _search(self, request: web.Request) -> web.Response:
        body = await request.json()
        failed = await self._guard(request, body)
        if failed:
            return failed
        self.requests.append(Recorded("POST", request.path, body, 200))
        objects = list(self.objects[_type(request)].values())
        groups = body.get("filterGroups") or [{"filters": []}]
        hits = [o for o in objects if any(_matches(o, g.get("filters", [])) for g in groups)]
        for sort in reversed(body.get("sorts") or []):
            prop = sort["propertyName"] if isinstance(sort, dict) else str(sort)
            hits.sort(
                key=lambda o: o.properties.get(prop) or "",
                reverse=isinstance(sort, dict) and sort.get("direction") == "DESCENDING",
            )
        limit = int(body.get("limit") or 10)
        wanted = body.get("properties") or []
        results = [_json(o, wanted) for o in hits[:limit]]
        return web.json_response({"total": len(hits), "results": results})

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        failed = await self._guard(request, body)
        if failed:
            return failed
        self.requests.append(Recorded("POST", request.path, body, 201))
        contacts = tuple(str(a["to"]["id"]) for a in body.get("associations") or [])
        oid = self.add(_type(request), body.get("properties") or {}, contacts)
        return web.json_response(_json(self.objects[_type(request)][oid], []), status=201)

    async def _update(self, request: web.Request) -> web.Response:
        body = await request.json()
        failed = await self._guard(request, body)
        if failed:
            return failed
        obj = self.objects[_type(request)].get(request.match_info["id"])
        if obj is None:
            self.requests.append(Recorded("PATCH", request.path, body, 404))
            return _error(404, "OBJECT_NOT_FOUND", "resource not found")
        self.requests.append(Recorded("PATCH", request.path, body, 200))
        obj.properties.update(body.get("properties") or {})
        return web.json_response(_json(obj, []))


def _type(request: web.Request) -> str:
    raw = request.match_info["type"]
    return _ALIASES.get(raw, raw)


def _matches(obj: HubSpotObject, filters: list[dict[str, Any]]) -> bool:
    for f in filters:
        prop, op, value = f["propertyName"], f["operator"], str(f.get("value", ""))
        if prop == "associations.contact":
            if (value in obj.contact_ids) != (op == "EQ"):
                return False
            continue
        actual = obj.id if prop == "hs_object_id" else obj.properties.get(prop)
        if op == "EQ" and actual != value:
            return False
        if op == "NEQ" and actual == value:
            return False
        if op in ("GTE", "LTE"):
            if actual is None:
                return False
            a, v = _comparable(actual), _comparable(value)
            if (op == "GTE" and a < v) or (op == "LTE" and a > v):
                return False
    return True


def _comparable(value: str) -> float:
    if value.isdigit():
        return int(value) / 1000
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _json(obj: HubSpotObject, wanted: list[str]) -> dict[str, Any]:
    props: dict[str, str | None] = {
        "hs_object_id": obj.id,
        "createdate": obj.created,
        "hs_lastmodifieddate": _now(),
    }
    props.update({k: v for k, v in obj.properties.items() if not wanted or k in wanted})
    for name in wanted:
        props.setdefault(name, None)
    return {
        "id": obj.id,
        "properties": props,
        "createdAt": obj.created,
        "updatedAt": _now(),
        "archived": False,
    }


def _error(status: int, category: str, message: str) -> web.Response:
    return web.json_response(
        {
            "status": "error",
            "message": message,
            "correlationId": str(uuid.uuid4()),
            "category": category,
        },
        status=status,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
