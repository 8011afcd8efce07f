"""/api/calls and /dashboard: operator auth, filters, paging, and an offline dashboard."""

import re
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from bot.call.records import CallRecords
from bot.operator.auth import COOKIE, OperatorAuth
from bot.operator.calls_api import create_calls_router
from bot.operator.dashboard import create_dashboard_router
from integrations.storage.caller_id import RedactedCallerId
from integrations.storage.records import utcnow
from tests.support.records import call_row, turn_row

TOKEN = "operator-token-for-tests-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def store(call_store):
    now = utcnow()
    calls, turns = [], []
    for i in range(12):
        started = now - timedelta(days=i % 4, minutes=i + 1)
        outcome = "escalated" if i % 3 == 0 else "resolved"
        calls.append(
            call_row(
                f"a{i:02d}",
                started,
                outcome=outcome,
                transport="webrtc" if i % 2 else "twilio",
                escalation_reason="asked for a person" if outcome == "escalated" else None,
            )
        )
        turns.append(
            turn_row(
                f"a{i:02d}",
                1,
                started + timedelta(seconds=3),
                intent="billing" if i < 4 else "opening_hours",
                caller_text="<script>alert(1)</script>",
                latency_ms=300.0 + i,
            )
        )
    call_store.bulk_insert(calls, turns)
    return call_store


def client_for(store, token=TOKEN):
    records = CallRecords(store, RedactedCallerId())
    auth = OperatorAuth(token)
    app = FastAPI()
    app.include_router(create_calls_router(lambda: records, auth))
    app.include_router(create_dashboard_router(lambda: records, auth))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_without_a_token_setting_everything_is_closed_and_says_why(store):
    async with client_for(store, token="") as client:
        for path in ("/api/calls", "/api/calls/stats", "/api/calls/a00", "/dashboard"):
            response = await client.get(path, headers=AUTH)
            assert response.status_code == 403
            assert "CALLAGENT_OPERATOR_TOKEN" in response.text


async def test_api_needs_the_token(store):
    async with client_for(store) as client:
        assert (await client.get("/api/calls")).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await client.get("/api/calls", headers=wrong)).status_code == 401
        assert (await client.get("/api/calls", headers=AUTH)).status_code == 200


async def test_api_lists_with_filters_and_paging(store):
    async with client_for(store) as client:
        page = (await client.get("/api/calls?limit=5&offset=10", headers=AUTH)).json()
        assert page["total"] == 12 and len(page["calls"]) == 2 and page["offset"] == 10
        escalated = (await client.get("/api/calls?outcome=escalated", headers=AUTH)).json()
        assert escalated["total"] == 4
        assert {c["outcome"] for c in escalated["calls"]} == {"escalated"}
        billing = (
            await client.get("/api/calls?intent=billing&transport=webrtc", headers=AUTH)
        ).json()
        assert {c["id"] for c in billing["calls"]} == {"a01", "a03"}
        recent = (await client.get("/api/calls?since=1d", headers=AUTH)).json()
        assert recent["total"] == 3
        bad = await client.get("/api/calls?since=yesterday-ish", headers=AUTH)
        assert bad.status_code == 422 and "7d" in bad.text
        assert (await client.get("/api/calls?outcome=great", headers=AUTH)).status_code == 422
        assert (await client.get("/api/calls?limit=5000", headers=AUTH)).status_code == 422


async def test_api_one_call_and_stats(store):
    async with client_for(store) as client:
        call = (await client.get("/api/calls/a02", headers=AUTH)).json()
        assert call["id"] == "a02" and call["turns"][0]["intent"] == "billing"
        assert (await client.get("/api/calls/nope", headers=AUTH)).status_code == 404
        stats = (await client.get("/api/calls/stats", headers=AUTH)).json()
        assert stats["totals"]["calls"] == 12 and stats["totals"]["escalated"] == 4
        assert stats["escalation_reasons"][0] == {"reason": "asked for a person", "count": 4}
        assert stats["slowest_turns"][0]["call_id"] == "a11"
        twilio = (await client.get("/api/calls/stats?transport=twilio", headers=AUTH)).json()
        assert twilio["totals"]["calls"] == 6


async def test_dashboard_login_then_charts_render_offline(store):
    async with client_for(store) as client:
        login = await client.get("/dashboard")
        assert login.status_code == 401 and 'name="token"' in login.text
        refused = await client.post("/dashboard/login", data={"token": "wrong"})
        assert refused.status_code == 401
        ok = await client.post("/dashboard/login", data={"token": TOKEN, "next": "/dashboard"})
        assert ok.status_code == 303 and COOKIE in ok.headers["set-cookie"]
        assert "httponly" in ok.headers["set-cookie"].lower()
        assert TOKEN not in ok.headers["set-cookie"]

        page = await client.get("/dashboard")  # the session cookie is sent back
        assert page.status_code == 200
        html = page.text
        for title in (
            "Calls per day",
            "Resolution and escalation rate",
            "Escalation reasons",
            "Intent distribution",
            "NLU confidence",
            "Slowest turns",
            "p50 / p95",
        ):
            assert title in html
        assert html.count("<svg") >= 6
        assert "/dashboard/calls/a11#turn-1" in html  # slowest turn links to its call
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.I)  # nothing external
        assert "<script" not in html  # caller text is escaped, and the page needs no JS

        call_page = await client.get("/dashboard/calls/a11")
        assert call_page.status_code == 200 and "&lt;script&gt;" in call_page.text
        filtered = await client.get("/dashboard?days=1&transport=webrtc&outcome=resolved")
        assert filtered.status_code == 200
        await client.post("/dashboard/logout")


MARKUP = "<script>alert('x\"&')</script>"


async def test_stored_markup_is_escaped_on_every_page(call_store):
    s = call_store
    started = utcnow() - timedelta(minutes=5)
    call = call_row(
        "m1",
        started,
        outcome="escalated",
        end_reason=MARKUP,
        agent=MARKUP,
        escalation_trigger=MARKUP,
        escalation_reason=MARKUP,
        transfer_result=MARKUP,
        escalation_summary={MARKUP: MARKUP},
        primary_intent=MARKUP,
    )
    turn = turn_row(
        "m1",
        1,
        started + timedelta(seconds=3),
        intent=MARKUP,
        caller_text=MARKUP,
        bot_text=MARKUP,
        runner_up=MARKUP,
        entities={MARKUP: 1},
        path=MARKUP,
    )
    s.bulk_insert([call], [turn])
    async with client_for(s) as client:
        pages = {
            "/dashboard": 200,
            "/dashboard/calls/m1": 200,
            f"/dashboard?intent={MARKUP}": 200,
            f"/dashboard/login?next=/dashboard/{MARKUP}": 200,
        }
        for path, status in pages.items():
            response = await client.get(path, headers=AUTH)
            assert response.status_code == status, path
            assert "<script" not in response.text, path
            assert "&lt;script&gt;" in response.text, path
        refused = await client.post("/dashboard/login", data={"token": "x", "next": MARKUP})
        assert refused.status_code == 401 and "<script" not in refused.text
        call_page = (await client.get("/dashboard/calls/m1", headers=AUTH)).text
        # every stored field shows up escaped: caller, bot, intent, runner-up, entities,
        # path, end reason, agent, escalation trigger/reason/transfer and summary
        assert call_page.count("&lt;script&gt;") >= 12


async def test_a_failing_database_gives_an_error_page_not_a_crash(store):
    async with client_for(store) as client:
        store.engine.dispose()
        store.stats = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("db down"))
        page = await client.get("/dashboard", headers=AUTH)
        assert page.status_code == 503 and "Recording is unaffected" in page.text
        api = await client.get("/api/calls/stats", headers=AUTH)
        assert api.status_code == 503
