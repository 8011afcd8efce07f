"""Twilio's Calls resource as JSON: the fake's call records and the bodies it answers with."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

API_VERSION = "2010-04-01"


@dataclass
class FakeCall:
    """The fake's view of one call."""

    sid: str
    account_sid: str
    status: str = "in-progress"
    twiml: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    direction: str = "inbound"
    from_number: str = "+15555550123"
    to_number: str = "+15555550100"
    answered_by: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration_s: int | None = None
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


def error_body(status: int, code: int, message: str) -> dict[str, object]:
    """A Twilio REST error body (``code``, ``message``, ``more_info``, ``status``)."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def call_json(call: FakeCall) -> dict[str, object]:
    """The call as Twilio's REST API returns it."""
    now = format_datetime(datetime.now(UTC))
    base = f"/{API_VERSION}/Accounts/{call.account_sid}/Calls/{call.sid}"
    ended = call.status == "completed"
    if call.direction == "inbound":
        start, end = now, now if ended else None
        duration = "0" if ended else None
    else:
        start = format_datetime(call.start_time) if call.start_time else None
        end = format_datetime(call.end_time) if call.end_time else None
        duration = None if call.duration_s is None else str(call.duration_s)
    return {
        "sid": call.sid,
        "account_sid": call.account_sid,
        "api_version": API_VERSION,
        "status": call.status,
        "direction": call.direction,
        "from": call.from_number,
        "to": call.to_number,
        "answered_by": call.answered_by,
        "date_created": format_datetime(call.created),
        "date_updated": now,
        "start_time": start,
        "end_time": end,
        "duration": duration,
        "price": None,
        "price_unit": "USD",
        "parent_call_sid": None,
        "uri": f"{base}.json",
        "subresource_uris": {"recordings": f"{base}/Recordings.json"},
    }


def call_list_json(
    account_sid: str, calls: list[FakeCall], query: dict[str, str]
) -> dict[str, object]:
    """One page of ``GET Calls.json``, newest first, filtered by ``To`` and ``From`` (as Twilio)."""
    wanted = [
        c
        for c in calls
        if c.account_sid == account_sid
        and query.get("To", c.to_number) == c.to_number
        and query.get("From", c.from_number) == c.from_number
    ]
    wanted.sort(key=lambda c: c.created, reverse=True)
    size = int(query.get("PageSize", "50"))
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Calls.json"
    return {
        "calls": [call_json(c) for c in wanted[:size]],
        "page": 0,
        "page_size": size,
        "start": 0,
        "end": max(0, min(size, len(wanted)) - 1),
        "uri": uri,
        "first_page_uri": uri,
        "next_page_uri": None,
        "previous_page_uri": None,
    }
