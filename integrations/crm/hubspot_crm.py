"""HubSpot as the CRM, through HubSpot's official Python SDK (``hubspot-api-client``).

Lookup: CRM v3 search on contacts by ``phone`` or ``mobilephone`` (or ``email``, or the
contact id), then, concurrently, the contact's upcoming meetings (appointments), recent
calls (interactions), open tickets (cases) and open tasks (pending actions), each by a
search on ``associations.contact``. Write-back: a call engagement logs the call outcome;
meetings are moved or cancelled by updating ``hs_meeting_start_time`` / outcome; a
callback request becomes a task.

Custom contact properties read when present: ``date_of_birth`` and ``callagent_pin``
(verification), ``callagent_account_status`` (else ``hs_lead_status``). The SDK is
synchronous: each request runs in a worker thread with a per-request timeout, and is retried
by :class:`integrations.retry.RetryPolicy` (connection errors, timeouts, 429 and 5xx;
``Retry-After`` honoured up to the back-off cap); the SDK's own urllib3 retries are off.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from hubspot import HubSpot
from hubspot.crm.contacts import (
    CollectionResponseWithTotalSimplePublicObjectForwardPaging,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
)
from hubspot.crm.objects.calls import SimplePublicObjectInputForCreate
from hubspot.crm.objects.meetings import SimplePublicObjectInput
from urllib3.util.retry import Retry

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

DEFAULT_BASE_URL = "https://api.hubapi.com"
CONTACT_PROPERTIES = [
    "firstname",
    "lastname",
    "email",
    "phone",
    "mobilephone",
    "hs_lead_status",
    "callagent_account_status",
    "date_of_birth",
    "callagent_pin",
]
# HubSpot-defined association type ids (engagement -> contact).
CALL_TO_CONTACT = 194
TASK_TO_CONTACT = 204
CLOSED_TICKET_STAGES = frozenset({"4", "closed"})
T = TypeVar("T")


class HubSpotCRM(CRM):
    """Contacts, meetings, calls, tickets and tasks in a HubSpot portal."""

    name = "hubspot"

    def __init__(
        self,
        access_token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 2.0,
        retries: int = 2,
    ):
        """Create the SDK client.

        Args:
            access_token: A private app token with the CRM scopes.
            base_url: API root (a local fake in tests).
            timeout_s: Per-request timeout.
            retries: Retries on 429/5xx and connection errors.
        """
        # One HTTP request per SDK call (a 4xx/5xx answer raises); the policy retries.
        single = Retry(total=0, raise_on_status=False)
        client = HubSpot(access_token=access_token, host=base_url.rstrip("/"), retry=single)
        self._retry = RetryPolicy(
            attempts=1 + max(0, retries),
            timeout_s=timeout_s,
            backoff_s=0.1,
            honour_retry_after=True,
        )
        self._timeout = self._retry.timeout_s
        self._contacts = client.crm.contacts.search_api
        self._tickets = client.crm.tickets.search_api
        self._meetings = client.crm.objects.meetings.search_api
        self._meetings_basic = client.crm.objects.meetings.basic_api
        self._calls = client.crm.objects.calls.search_api
        self._calls_basic = client.crm.objects.calls.basic_api
        self._tasks = client.crm.objects.tasks.search_api
        self._tasks_basic = client.crm.objects.tasks.basic_api

    async def lookup(self, identity: str) -> CallerRecord | None:
        """Search the contact, then its meetings, calls, tickets and tasks concurrently."""
        contact = await self._call(self._find_contact, identity.strip())
        if contact is None:
            return None
        cid = str(contact.id)
        meetings, calls, tickets, tasks = await asyncio.gather(
            self._call(
                self._associated,
                self._meetings,
                cid,
                [
                    "hs_meeting_title",
                    "hs_meeting_start_time",
                    "hs_meeting_outcome",
                    "hs_activity_type",
                ],
                [
                    _filter(
                        "hs_meeting_start_time",
                        "GTE",
                        _epoch_ms(datetime.now(UTC) - timedelta(hours=1)),
                    )
                ],
                "hs_meeting_start_time",
                "ASCENDING",
            ),
            self._call(
                self._associated,
                self._calls,
                cid,
                ["hs_call_title", "hs_timestamp", "hs_call_disposition", "hs_call_status"],
                [],
                "hs_timestamp",
                "DESCENDING",
                5,
            ),
            self._call(
                self._associated,
                self._tickets,
                cid,
                ["subject", "hs_pipeline_stage", "createdate"],
                [],
                "createdate",
                "ASCENDING",
            ),
            self._call(
                self._associated,
                self._tasks,
                cid,
                ["hs_task_subject", "hs_task_status", "hs_timestamp", "hs_task_type"],
                [_filter("hs_task_status", "NEQ", "COMPLETED")],
                "hs_timestamp",
                "ASCENDING",
            ),
        )
        p = contact.properties or {}
        return CallerRecord(
            customer_id=cid,
            first_name=p.get("firstname") or "",
            last_name=p.get("lastname") or "",
            phone=normalize_phone(p.get("phone") or p.get("mobilephone") or "") or "",
            email=p.get("email") or "",
            account_status=(
                p.get("callagent_account_status") or p.get("hs_lead_status") or "active"
            ).lower(),
            appointments=tuple(
                Appointment(
                    id=str(m.id),
                    starts_at=starts,
                    kind=(m.properties.get("hs_meeting_title") or "appointment"),
                    provider="",
                    status="cancelled"
                    if (m.properties.get("hs_meeting_outcome") or "").upper() == "CANCELED"
                    else "booked",
                )
                for m in meetings
                if (starts := parse_datetime(m.properties.get("hs_meeting_start_time")))
            ),
            interactions=tuple(
                Interaction(
                    at=at,
                    channel="call",
                    summary=c.properties.get("hs_call_title") or "",
                    outcome=c.properties.get("hs_call_disposition") or "",
                )
                for c in calls
                if (at := parse_datetime(c.properties.get("hs_timestamp")))
            ),
            open_cases=tuple(
                Case(
                    id=str(t.id),
                    subject=t.properties.get("subject") or "",
                    status="open",
                    opened_at=parse_datetime(t.properties.get("createdate")),
                )
                for t in tickets
                if (t.properties.get("hs_pipeline_stage") or "") not in CLOSED_TICKET_STAGES
            ),
            pending_actions=tuple(
                PendingAction(
                    id=str(t.id),
                    kind=(t.properties.get("hs_task_type") or "TODO").lower(),
                    note=t.properties.get("hs_task_subject") or "",
                    due=parse_datetime(t.properties.get("hs_timestamp")),
                )
                for t in tasks
            ),
            source=self.name,
            secrets={
                "pin": p.get("callagent_pin") or "",
                "date_of_birth": p.get("date_of_birth") or "",
            },
        )

    async def log_call(self, customer_id: str, outcome: CallOutcome) -> None:
        """Create a completed inbound call engagement on the contact."""
        started = outcome.started_at or datetime.now(UTC)
        body = SimplePublicObjectInputForCreate(
            properties={
                "hs_timestamp": started.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "hs_call_title": f"AI agent call: {outcome.outcome}",
                "hs_call_body": outcome.summary,
                "hs_call_direction": "INBOUND",
                "hs_call_status": "COMPLETED",
                "hs_call_duration": str(int(outcome.duration_s * 1000)),
            },
            associations=[_association(customer_id, CALL_TO_CONTACT)],
        )
        await self._call(
            self._calls_basic.create,
            simple_public_object_input_for_create=body,
            _request_timeout=self._timeout,
        )

    async def move_appointment(
        self, customer_id: str, appointment_id: str, starts_at: datetime
    ) -> None:
        """Move the meeting (start time; the end keeps the duration HubSpot has)."""
        at = starts_at if starts_at.tzinfo else starts_at.replace(tzinfo=UTC)
        body = SimplePublicObjectInput(properties={"hs_meeting_start_time": _iso(at)})
        await self._call(
            self._meetings_basic.update,
            appointment_id,
            simple_public_object_input=body,
            _request_timeout=self._timeout,
        )

    async def cancel_appointment(self, customer_id: str, appointment_id: str) -> None:
        """Mark the meeting's outcome as cancelled."""
        body = SimplePublicObjectInput(properties={"hs_meeting_outcome": "CANCELED"})
        await self._call(
            self._meetings_basic.update,
            appointment_id,
            simple_public_object_input=body,
            _request_timeout=self._timeout,
        )

    async def add_pending_action(self, customer_id: str, kind: str, note: str = "") -> None:
        """Create an open task on the contact."""
        due = datetime.now(UTC) + timedelta(hours=4)
        body = SimplePublicObjectInputForCreate(
            properties={
                "hs_timestamp": _iso(due),
                "hs_task_subject": note or kind.replace("_", " "),
                "hs_task_status": "NOT_STARTED",
                "hs_task_type": "CALL" if kind == "callback" else "TODO",
            },
            associations=[_association(customer_id, TASK_TO_CONTACT)],
        )
        await self._call(
            self._tasks_basic.create,
            simple_public_object_input_for_create=body,
            _request_timeout=self._timeout,
        )

    # Blocking helpers (run in threads)

    def _find_contact(self, identity: str) -> Any:
        phone = normalize_phone(identity)
        if phone:
            groups = [
                FilterGroup(filters=[Filter(property_name=prop, operator="EQ", value=value)])
                for prop in ("phone", "mobilephone")
                for value in dict.fromkeys((phone, identity))
            ]
        elif "@" in identity:
            groups = [
                FilterGroup(
                    filters=[Filter(property_name="email", operator="EQ", value=identity.lower())]
                )
            ]
        else:
            groups = [
                FilterGroup(
                    filters=[Filter(property_name="hs_object_id", operator="EQ", value=identity)]
                )
            ]
        # The generated SDK is unannotated; its docstring names this return type.
        page = cast(
            CollectionResponseWithTotalSimplePublicObjectForwardPaging,
            self._contacts.do_search(
                public_object_search_request=PublicObjectSearchRequest(
                    filter_groups=groups, properties=CONTACT_PROPERTIES, limit=1
                ),
                _request_timeout=self._timeout,
            ),
        )
        return page.results[0] if page.results else None

    def _associated(
        self,
        api: Any,
        contact_id: str,
        properties: list[str],
        filters: list[dict[str, str]],
        sort_by: str,
        direction: str,
        limit: int = 10,
    ) -> list[Any]:
        request = {
            "filterGroups": [
                {"filters": [_filter("associations.contact", "EQ", contact_id), *filters]}
            ],
            "properties": properties,
            "sorts": [{"propertyName": sort_by, "direction": direction}],
            "limit": limit,
        }
        return list(
            api.do_search(
                public_object_search_request=request, _request_timeout=self._timeout
            ).results
            or []
        )

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        started = time.perf_counter()

        async def attempt(_number: int) -> T:
            return await asyncio.to_thread(fn, *args, **kwargs)

        try:
            return await self._retry.call(attempt, what="HubSpot request")
        except Exception as e:  # the SDK raises ApiException, urllib3 and socket errors
            status = getattr(e, "status", None)
            detail = f"HTTP {status}" if status else type(e).__name__
            elapsed = round((time.perf_counter() - started) * 1000)
            raise CRMError(f"HubSpot request failed ({detail}) after {elapsed} ms") from e


def _filter(prop: str, operator: str, value: Any) -> dict[str, str]:
    return {"propertyName": prop, "operator": operator, "value": str(value)}


def _association(contact_id: str, type_id: int) -> dict[str, Any]:
    return {
        "to": {"id": contact_id},
        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
    }


def _epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
