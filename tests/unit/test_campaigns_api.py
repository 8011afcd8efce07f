"""/api/campaigns, /api/dnc and /dashboard/campaigns: operator auth, bad input named, actions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from loguru import logger

from bot.call.records import CallRecords
from bot.call.runtime import Runtime
from bot.operator.auth import COOKIE, OperatorAuth
from bot.operator.campaigns_api import create_campaigns_router
from bot.operator.campaigns_dashboard import create_campaigns_dashboard_router
from bot.operator.dashboard import create_dashboard_router
from bot.settings import Settings
from bot.web.app import create_app
from integrations.storage import CallStore
from integrations.storage.caller_id import RedactedCallerId
from processors.agent_definition import AgentDefinition

TOKEN = "operator-token-for-tests-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CSV = "phone,first_name\n+12125550101,Maria\n+12125550102,\nnope,Ann\n"


def agents(key: str) -> tuple[str, ...]:
    if key != "appointment_reminders":
        raise ValueError(f"no agent {key!r}")
    return ("first_name",)


@pytest.fixture
def changed() -> list[str]:
    return []


@pytest.fixture
async def client(call_store: CallStore, changed: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    records = CallRecords(call_store, RedactedCallerId())
    auth = OperatorAuth(TOKEN)
    app = FastAPI()
    app.include_router(create_campaigns_router(lambda: records, auth, agents, changed.append))
    app.include_router(create_campaigns_dashboard_router(lambda: records, auth, changed.append))
    app.include_router(create_dashboard_router(lambda: records, auth))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def create_json(client: httpx.AsyncClient, **over: object) -> dict[str, object]:
    body = {
        "agent": "appointment_reminders",
        "name": "Tomorrow",
        "rules": {"windows": {"mon-fri": ["09:00-19:00"]}, "timezone": "America/New_York"},
        "rows": [{"phone": "+12125550101", "first_name": "Maria"}, {"phone": "x"}],
        **over,
    }
    response = await client.post("/api/campaigns", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()


async def test_everything_needs_the_operator_token(client: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "/api/campaigns"),
        ("POST", "/api/campaigns"),
        ("GET", "/api/dnc"),
        ("DELETE", "/api/dnc?phone=%2B12125550101"),
        ("POST", "/api/campaigns/cp_x/pause"),
    ):
        assert (await client.request(method, path)).status_code == 401
    page = await client.get("/dashboard/campaigns")
    assert page.status_code == 303 and page.headers["location"].startswith("/dashboard/login")


async def test_create_from_json_rows(client: httpx.AsyncClient, changed: list[str]) -> None:
    created = await create_json(client)
    assert created["imported"] == 1
    assert created["problems"] == [{"line": 2, "reason": "invalid phone number"}]
    assert changed == [created["id"]]
    assert created["dialling"] == "queued"
    listed = (await client.get("/api/campaigns", headers=AUTH)).json()["campaigns"]
    assert [c["id"] for c in listed] == [created["id"]]
    one = (await client.get(f"/api/campaigns/{created['id']}", headers=AUTH)).json()
    assert one["progress"]["pending"] == 1 and one["rules"]["timezone"] == "America/New_York"


async def test_create_from_a_csv_upload_with_rules_in_the_query(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/campaigns?agent=appointment_reminders&window=mon-fri%2009:00-19:00"
        "&retry=no-answer=1x1h&holidays=US&max_concurrent=3&cps=0.5",
        content=CSV,
        headers={**AUTH, "content-type": "text/csv"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["imported"] == 1
    assert body["problems"] == [
        {"line": 3, "reason": "missing variable 'first_name' (the script uses it)"},
        {"line": 4, "reason": "invalid phone number"},
    ]
    rules = body["campaign"]["rules"]
    assert rules["max_concurrent"] == 3 and rules["holidays"] == "US"
    assert rules["retries"]["no-answer"] == {"times": 1, "delay_secs": 3600}
    contacts = (await client.get(f"/api/campaigns/{body['id']}/contacts", headers=AUTH)).json()
    assert contacts["contacts"][0]["variables"] == {"first_name": "Maria"}


@pytest.mark.parametrize(
    ("query", "named", "status"),
    [
        ("agent=nobody", "agent:", 422),
        ("", "agent:", 422),
        ("agent=appointment_reminders&window=weekdays", "window:", 422),
        ("agent=appointment_reminders&cps=fast", "cps:", 422),
        ("agent=appointment_reminders&cps=0", "cps:", 422),
        ("agent=appointment_reminders&timezone=Mars", "timezone:", 422),
        ("agent=appointment_reminders&retry=often", "retry:", 422),
        ("agent=appointment_reminders&webhook=nope", "webhook:", 422),
    ],
)
async def test_bad_csv_uploads_name_the_parameter(
    client: httpx.AsyncClient, query: str, named: str, status: int
) -> None:
    response = await client.post(
        f"/api/campaigns?{query}", content=CSV, headers={**AUTH, "content-type": "text/csv"}
    )
    assert response.status_code == status
    assert response.json()["detail"].startswith(named)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"{not json", "body:"),
        (b"[]", "body:"),
        (json.dumps({"agent": "appointment_reminders", "rows": []}).encode(), "rows:"),
        (json.dumps({"agent": "appointment_reminders", "rows": [1]}).encode(), "rows:"),
        (
            json.dumps(
                {"agent": "appointment_reminders", "rows": [{}], "rules": {"max_concurrent": "x"}}
            ).encode(),
            "rules.max_concurrent:",
        ),
        (
            json.dumps({"agent": "appointment_reminders", "rows": [{"phone": "x"}]}).encode(),
            "rows:",
        ),
    ],
)
async def test_bad_json_is_named(client: httpx.AsyncClient, body: bytes, named: str) -> None:
    response = await client.post(
        "/api/campaigns", content=body, headers={**AUTH, "content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith(named)
    assert "+1" not in response.text


async def test_other_content_and_huge_bodies_are_refused(client: httpx.AsyncClient) -> None:
    xml = await client.post(
        "/api/campaigns", content=b"<x/>", headers={**AUTH, "content-type": "application/xml"}
    )
    assert xml.status_code == 415
    big = await client.post(
        "/api/campaigns?agent=appointment_reminders",
        content=b"x" * (10 * 1024 * 1024 + 1),
        headers={**AUTH, "content-type": "text/csv"},
    )
    assert big.status_code == 413


async def test_pause_resume_cancel_and_export(
    client: httpx.AsyncClient, changed: list[str]
) -> None:
    campaign_id = str((await create_json(client))["id"])
    base = f"/api/campaigns/{campaign_id}"
    assert (await client.post(f"{base}/pause", headers=AUTH)).json()["state"] == "paused"
    assert (await client.post(f"{base}/resume", headers=AUTH)).json()["state"] == "running"
    assert changed == [campaign_id, campaign_id]
    cancelled = (await client.post(f"{base}/cancel", headers=AUTH)).json()
    assert cancelled["state"] == "cancelled" and cancelled["progress"]["cancelled"] == 1
    assert (await client.post(f"{base}/resume", headers=AUTH)).status_code == 409
    assert (await client.post(f"{base}/explode", headers=AUTH)).status_code == 404
    assert (await client.get("/api/campaigns/cp_nope", headers=AUTH)).status_code == 404
    exported = await client.get(f"{base}/export?format=jsonl", headers=AUTH)
    assert exported.status_code == 200
    row = json.loads(exported.text.splitlines()[0])
    assert row["phone"] == "+12125550101" and row["state"] == "cancelled"
    csv_export = await client.get(f"{base}/export", headers=AUTH)
    assert csv_export.headers["content-type"].startswith("text/csv")
    assert csv_export.text.splitlines()[0].startswith("id,line,phone")
    assert (await client.get(f"{base}/export?format=xls", headers=AUTH)).status_code == 422


async def test_do_not_call_api(client: httpx.AsyncClient) -> None:
    added = await client.post("/api/dnc", json={"phone": "(212) 555-0101"}, headers=AUTH)
    assert added.status_code == 201 and added.json() == {"added": 1, "invalid": []}
    many = await client.post("/api/dnc", json={"phones": ["+12125550102", "no"]}, headers=AUTH)
    assert many.json() == {"added": 1, "invalid": [1]}
    bad = await client.post("/api/dnc", json={"phone": "no"}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["detail"].startswith("phone:")
    listed = (await client.get("/api/dnc", headers=AUTH)).json()
    assert listed["total"] == 2
    gone = await client.delete("/api/dnc", params={"phone": "+12125550101"}, headers=AUTH)
    assert gone.status_code == 200
    again = await client.delete("/api/dnc", params={"phone": "+12125550101"}, headers=AUTH)
    assert again.status_code == 404
    nonsense = await client.delete("/api/dnc", params={"phone": "hello"}, headers=AUTH)
    assert nonsense.status_code == 422
    # a listed number in a new campaign is reported, not imported
    created = await create_json(
        client,
        rows=[
            {"phone": "+12125550102", "first_name": "A"},
            {"phone": "+12125550103", "first_name": "B"},
        ],
    )
    assert created["problems"] == [
        {"line": 1, "reason": "number on the do-not-call list (not imported)"}
    ]


async def log_in(client: httpx.AsyncClient) -> None:
    response = await client.post("/dashboard/login", data={"token": TOKEN, "next": "/dashboard"})
    assert response.status_code == 303 and COOKIE in response.cookies


async def test_dashboard_pages_and_buttons(client: httpx.AsyncClient, changed: list[str]) -> None:
    campaign_id = str((await create_json(client))["id"])
    await log_in(client)
    listing = await client.get("/dashboard/campaigns")
    assert listing.status_code == 200 and campaign_id in listing.text and "Tomorrow" in listing.text
    page = await client.get(f"/dashboard/campaigns/{campaign_id}")
    assert page.status_code == 200
    assert "+12125550101" in page.text and "Pause" in page.text and "Resume" not in page.text
    paused = await client.post(f"/dashboard/campaigns/{campaign_id}/pause")
    assert paused.status_code == 303
    assert "Resume" in (await client.get(f"/dashboard/campaigns/{campaign_id}")).text
    foreign = await client.post(
        f"/dashboard/campaigns/{campaign_id}/resume", headers={"origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    same = await client.post(
        f"/dashboard/campaigns/{campaign_id}/resume", headers={"origin": "http://test"}
    )
    assert same.status_code == 303 and changed[-1] == campaign_id
    assert (await client.get("/dashboard/campaigns/cp_nope")).status_code == 404


def test_the_server_app_serves_campaigns_and_logs_no_numbers(
    data_dir: Path, agent: AgentDefinition, call_store: CallStore
) -> None:
    """Through ``create_app``: the routes are included, agents resolve by file stem."""
    settings = Settings.load({"CALLAGENT_HOST": "0.0.0.0", "CALLAGENT_OPERATOR_TOKEN": TOKEN})
    unused = cast(Any, None)
    runtime = Runtime(
        settings,
        agent,
        None,
        None,
        unused,
        unused,
        None,
        records=CallRecords(call_store, RedactedCallerId()),
    )
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{message}")
    try:
        with TestClient(create_app(settings, runtime)) as client:
            created = client.post(
                "/api/campaigns?agent=dental_front_desk&timezone=America/Chicago",
                content="phone,first_name\n+12125550101,Maria\nbad,Omar\n",
                headers={**AUTH, "content-type": "text/csv"},
            )
            assert created.status_code == 201, created.text
            # no Twilio here: the answer says the campaign is stored but cannot dial, and why
            dialling = created.json()["dialling"]
            assert "cannot dial" in dialling and "TWILIO_ACCOUNT_SID" in dialling
            unknown = client.post(
                "/api/campaigns?agent=nobody",
                content="phone\n+12125550101\n",
                headers={**AUTH, "content-type": "text/csv"},
            )
            assert unknown.status_code == 422 and unknown.json()["detail"].startswith("agent:")
            campaign_id = created.json()["id"]
            assert client.get(f"/api/campaigns/{campaign_id}", headers=AUTH).status_code == 200
            assert client.post("/api/dnc", json={"phone": "+12125550109"}, headers=AUTH).is_success
    finally:
        logger.remove(sink)
    logged = "\n".join(lines)
    assert campaign_id in logged
    assert "555" not in logged and "Maria" not in logged
