"""A generic REST/webhook CRM: one GET to look the caller up, one POST per write-back.

Configured with a URL template (``https://crm.example.com/api/customers?phone={phone}``),
an auth header, and a field mapping from the CRM's JSON to :class:`CallerRecord` fields.
Requests time out and are retried by :class:`integrations.retry.RetryPolicy` (connection
errors, timeouts, 429 and 5xx only; exponential back-off with jitter); writes carry an
``Idempotency-Key`` so a retried write is applied once.

Field mapping (``CRM_REST_FIELD_MAP``): comma-separated ``field=json.path`` pairs. Record
fields: ``customer_id first_name last_name phone email account_status date_of_birth pin
appointments interactions open_cases pending_actions``. List fields point at a JSON list
whose items use the record's own key names unless mapped with ``list[].key=item.path``
(e.g. ``appointments[].starts_at=start``). ``customer_id=id`` etc. are the defaults, and
a path of ``$`` on ``record`` (``record=data.customer``) says where the customer object is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from integrations.crm.base import (
    CRM,
    Appointment,
    CallerRecord,
    CallOutcome,
    Case,
    CRMError,
    Interaction,
    PendingAction,
    normalize_phone,
    parse_datetime,
)
from integrations.retry import RetryPolicy

SCALARS = (
    "customer_id",
    "first_name",
    "last_name",
    "phone",
    "email",
    "account_status",
    "date_of_birth",
    "pin",
)
LISTS = ("appointments", "interactions", "open_cases", "pending_actions")
DEFAULT_PATHS = {
    "record": "",
    "customer_id": "id",
    **{name: name for name in SCALARS if name != "customer_id"},
    **{name: name for name in LISTS},
}


class FieldMapError(ValueError):
    """``CRM_REST_FIELD_MAP`` is malformed; the message names the entry."""


def parse_field_map(text: str) -> dict[str, str]:
    """Parse ``field=path, list[].key=path`` pairs into a mapping (defaults filled in)."""
    mapping = dict(DEFAULT_PATHS)
    for entry in filter(None, (e.strip() for e in text.replace("\n", ",").split(","))):
        name, sep, path = entry.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name:
            raise FieldMapError(f"field map entry {entry!r}: use field=json.path")
        base = name.split("[]", 1)[0]
        if base not in mapping and base != "record":
            raise FieldMapError(
                f"field map entry {entry!r}: unknown field {base!r} "
                f"(known: record, {', '.join((*SCALARS, *LISTS))})"
            )
        mapping[name] = path
    return mapping


def dig(data: Any, path: str) -> Any:
    """The value at a dotted path (``a.b.0.c``; empty path = ``data``), or None."""
    for part in filter(None, path.split(".")):
        if isinstance(data, Mapping):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


class RestCRM(CRM):
    """Any CRM with an HTTP lookup endpoint and (optionally) a write-back webhook."""

    name = "rest"

    def __init__(
        self,
        lookup_url: str,
        *,
        write_url: str = "",
        headers: Mapping[str, str] | None = None,
        field_map: Mapping[str, str] | None = None,
        timeout_s: float = 2.0,
        retries: int = 2,
        backoff_s: float = 0.1,
        client: httpx.AsyncClient | None = None,
    ):
        """Configure the adapter.

        Args:
            lookup_url: GET URL template; ``{phone}`` (E.164, or the raw identity when it is
                not a phone number) and ``{identity}`` are filled in, URL-encoded.
            write_url: POST URL template for write-backs (``{customer_id}``); empty = none.
            headers: Extra headers, e.g. ``{"Authorization": "Bearer ..."}``.
            field_map: From :func:`parse_field_map` (defaults when None).
            timeout_s: Per-attempt timeout.
            retries: Extra attempts after the first on retryable failures.
            backoff_s: First back-off; doubles each retry (with jitter).
            client: An httpx client to use (tests); one is made otherwise.
        """
        self._lookup_url = lookup_url
        self._write_url = write_url
        self._headers = {"Accept": "application/json", **dict(headers or {})}
        self._map = dict(field_map or DEFAULT_PATHS)
        self._retry = RetryPolicy(
            attempts=1 + max(0, retries), timeout_s=timeout_s, backoff_s=backoff_s
        )
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._owns_client = client is None

    async def lookup(self, identity: str) -> CallerRecord | None:
        """GET the lookup URL; 404 or an empty answer means not found."""
        phone = normalize_phone(identity) or identity.strip()
        url = self._lookup_url.format(
            phone=quote(phone, safe=""), identity=quote(identity.strip(), safe="")
        )
        response = await self._request("GET", url)
        if response.status_code == 404:
            return None
        _raise_for_status(response, "lookup")
        try:
            data = response.json()
        except ValueError:
            raise CRMError("lookup answered with something other than JSON") from None
        body = dig(data, self._map.get("record", ""))
        if isinstance(body, list):
            body = body[0] if body else None
        if not isinstance(body, Mapping) or not body:
            return None
        return self._record(body)

    async def log_call(self, customer_id: str, outcome: CallOutcome) -> None:
        """POST ``{"action": "log_call", ...}`` to the write URL."""
        await self._write(
            customer_id,
            "log_call",
            {
                "call_id": outcome.call_id,
                "outcome": outcome.outcome,
                "intents": list(outcome.intents),
                "summary": outcome.summary,
                "started_at": outcome.started_at.isoformat() if outcome.started_at else None,
                "duration_s": round(outcome.duration_s, 1),
            },
            key=f"log_call:{outcome.call_id}",
        )

    async def move_appointment(
        self, customer_id: str, appointment_id: str, starts_at: datetime
    ) -> None:
        """POST ``{"action": "move_appointment", ...}`` to the write URL."""
        await self._write(
            customer_id,
            "move_appointment",
            {"appointment_id": appointment_id, "starts_at": starts_at.isoformat()},
            key=f"move:{appointment_id}:{starts_at.isoformat()}",
        )

    async def cancel_appointment(self, customer_id: str, appointment_id: str) -> None:
        """POST ``{"action": "cancel_appointment", ...}`` to the write URL."""
        await self._write(
            customer_id,
            "cancel_appointment",
            {"appointment_id": appointment_id},
            key=f"cancel:{appointment_id}",
        )

    async def confirm_appointment(self, customer_id: str, appointment_id: str) -> None:
        """POST ``{"action": "confirm_appointment", ...}`` to the write URL."""
        await self._write(
            customer_id,
            "confirm_appointment",
            {"appointment_id": appointment_id},
            key=f"confirm:{appointment_id}",
        )

    async def add_pending_action(self, customer_id: str, kind: str, note: str = "") -> None:
        """POST ``{"action": "add_pending_action", ...}`` to the write URL."""
        await self._write(
            customer_id,
            "add_pending_action",
            {"kind": kind, "note": note},
            key=f"action:{customer_id}:{kind}:{note}",
        )

    async def close(self) -> None:
        """Close the HTTP client if this adapter made it."""
        if self._owns_client:
            await self._client.aclose()

    async def _write(self, customer_id: str, action: str, data: dict[str, Any], key: str) -> None:
        if not self._write_url:
            raise CRMError("no write URL configured (CRM_REST_WRITE_URL)")
        url = self._write_url.format(customer_id=quote(customer_id, safe=""))
        body = {"action": action, "customer_id": customer_id, **data}
        idempotency_key = hashlib.sha256(f"{customer_id}|{key}".encode()).hexdigest()[:32]
        response = await self._request(
            "POST",
            url,
            content=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Idempotency-Key": idempotency_key},
        )
        _raise_for_status(response, action)

    async def _request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        attempts = 0

        async def attempt(number: int) -> httpx.Response:
            nonlocal attempts
            attempts = number
            return await self._client.request(
                method,
                url,
                content=content,
                headers={**self._headers, **dict(headers or {})},
                timeout=self._retry.timeout_s,
            )

        try:
            return await self._retry.call(attempt, what=f"REST CRM {method}")
        except httpx.HTTPError as e:
            raise CRMError(f"{method} failed after {attempts} attempts: {type(e).__name__}") from e

    def _record(self, body: Mapping[str, Any]) -> CallerRecord:
        def scalar(name: str) -> str:
            value = dig(body, self._map.get(name, name))
            return "" if value is None else str(value)

        customer_id = scalar("customer_id")
        if not customer_id:
            raise CRMError("lookup answer has no customer id (check CRM_REST_FIELD_MAP)")
        appointments = tuple(
            Appointment(
                id=str(item.get("id", "")),
                starts_at=starts,
                kind=str(item.get("kind") or "appointment"),
                provider=str(item.get("provider") or ""),
                status=str(item.get("status") or "booked"),
            )
            for item in self._items(body, "appointments")
            if (starts := parse_datetime(item.get("starts_at"))) is not None
        )
        interactions = tuple(
            Interaction(
                at=at,
                channel=str(item.get("channel") or "call"),
                summary=str(item.get("summary") or ""),
                outcome=str(item.get("outcome") or ""),
            )
            for item in self._items(body, "interactions")
            if (at := parse_datetime(item.get("at"))) is not None
        )
        cases = tuple(
            Case(
                id=str(item.get("id", "")),
                subject=str(item.get("subject") or ""),
                status=str(item.get("status") or "open"),
                opened_at=parse_datetime(item.get("opened_at")),
            )
            for item in self._items(body, "open_cases")
        )
        actions = tuple(
            PendingAction(
                id=str(item.get("id", "")),
                kind=str(item.get("kind") or "follow_up"),
                note=str(item.get("note") or ""),
                due=parse_datetime(item.get("due")),
            )
            for item in self._items(body, "pending_actions")
        )
        return CallerRecord(
            customer_id=customer_id,
            first_name=scalar("first_name"),
            last_name=scalar("last_name"),
            phone=normalize_phone(scalar("phone")) or scalar("phone"),
            email=scalar("email"),
            account_status=scalar("account_status") or "active",
            appointments=tuple(sorted(appointments, key=lambda a: a.starts_at)),
            interactions=tuple(sorted(interactions, key=lambda i: i.at, reverse=True)),
            open_cases=tuple(c for c in cases if c.status != "closed"),
            pending_actions=actions,
            source=self.name,
            secrets={"pin": scalar("pin"), "date_of_birth": scalar("date_of_birth")},
        )

    def _items(self, body: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
        raw = dig(body, self._map.get(name, name))
        if not isinstance(raw, list):
            return []
        prefix = f"{name}[]."
        renames = {k[len(prefix) :]: v for k, v in self._map.items() if k.startswith(prefix)}
        items = []
        for item in raw:
            if not isinstance(item, Mapping):
                continue
            mapped = dict(item)
            for key, path in renames.items():
                mapped[key] = dig(item, path)
            items.append(mapped)
        return items


def _raise_for_status(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        raise CRMError(f"{what} failed: HTTP {response.status_code}")
