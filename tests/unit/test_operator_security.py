"""Issue 16 attacks on the operator surface, against the real server app (``create_app``).

Each test is an attack from the outside test first (it failed before the fix), then what a
legitimate operator still gets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from loguru import logger

from bot.call.records import CallRecords
from bot.call.runtime import Runtime
from bot.settings import Settings
from bot.web.app import create_app
from integrations.storage import CallStore
from integrations.storage.caller_id import RedactedCallerId
from integrations.storage.records import utcnow
from processors.agent_definition import AgentDefinition
from tests.support.records import call_row, turn_row

TOKEN = "operator-token-for-tests-0123"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
COOKIE = "callagent_operator"


@pytest.fixture
def store(call_store: CallStore) -> CallStore:
    now = utcnow()
    calls = [call_row(f"c{i}", now - timedelta(hours=i + 1)) for i in range(3)]
    turns = [turn_row(f"c{i}", 1, now - timedelta(hours=i + 1), intent="billing") for i in range(3)]
    call_store.bulk_insert(calls, turns)
    return call_store


@pytest.fixture
def serve(data_dir: Path, agent: AgentDefinition, store: CallStore) -> Iterator[Any]:
    """``serve(**env)``: the real server app on a TestClient, started (lifespan run)."""
    opened: list[TestClient] = []

    def start(**env: str) -> TestClient:
        values = {"CALLAGENT_HOST": "0.0.0.0", "CALLAGENT_OPERATOR_TOKEN": TOKEN, **env}
        settings = Settings.load({k: v for k, v in values.items() if v})
        unused = cast(Any, None)
        runtime = Runtime(
            settings,
            agent,
            None,
            None,
            unused,
            unused,
            None,
            records=CallRecords(store, RedactedCallerId()),
        )
        client = TestClient(create_app(settings, runtime), raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return client

    yield start
    for client in opened:
        client.__exit__(None, None, None)


@contextmanager
def captured_logs() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{message}")
    try:
        yield lines
    finally:
        logger.remove(sink)


def login(client: TestClient) -> str:
    response = client.post(
        "/dashboard/login", data={"token": TOKEN, "next": "/dashboard"}, follow_redirects=False
    )
    assert response.status_code == 303
    client.cookies.clear()
    cookie = SimpleCookie(response.headers["set-cookie"])
    return cookie[COOKIE].value


# Bad query values: 422 naming the parameter, never 500 or 503


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/calls?since=1000000d", "since"),
        ("/api/calls?since=99999999999999999999w", "since"),
        ("/api/calls?until=1000000d", "until"),
        ("/api/calls?until=0001-01-01T00:00:00%2B01:00", "until"),
        ("/api/calls?since=not-a-time", "since"),
        ("/api/calls?offset=9223372036854775808", "offset"),
        ("/api/calls?offset=-1", "offset"),
        ("/api/calls?limit=0", "limit"),
        ("/api/calls/stats?since=1000000d", "since"),
        ("/api/calls/stats?until=1000000d", "until"),
        ("/api/calls/c0/events?after=99999999999999999999999", "after"),
        ("/api/calls/c0/events?wait=nan", "wait"),
        ("/api/diagnostics?collect=maybe", "collect"),
        ("/dashboard?days=1000000", "days"),
    ],
)
def test_bad_query_values_answer_422_naming_the_parameter(serve, path, parameter):
    client = serve()
    response = client.get(path, headers=BEARER)
    assert response.status_code == 422, response.text
    assert parameter in response.text


def test_until_at_the_end_of_time_with_an_intent_filter_is_answered(serve):
    client = serve()
    response = client.get("/api/calls?until=9999-12-31&intent=billing", headers=BEARER)
    assert response.status_code == 200
    assert response.json()["total"] == 3


def test_cli_calls_list_with_a_huge_since_says_what_is_wrong(data_dir, capsys):
    from bot.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["calls", "list", "--since", "1000000d"])
    message = str(stopped.value)
    assert "--since" in message and "1000000d" in message and "too far" in message


# Guessing the operator token


def test_wrong_tokens_are_throttled_and_logged_without_the_token(serve):
    client = serve()
    session = login(client)  # an operator already logged in from the same address
    guesses = [f"guess-{n:04d}-not-the-token" for n in range(20)]
    with captured_logs() as lines:
        answers = [
            client.get("/api/calls", headers={"Authorization": f"Bearer {g}"}) for g in guesses
        ]
    codes = [a.status_code for a in answers]
    assert codes[:5] == [401] * 5
    assert set(codes[5:]) == {429}
    assert int(answers[-1].headers["retry-after"]) >= 1
    # while locked out, even the right token is refused: guessing gains nothing
    assert client.get("/api/calls", headers=BEARER).status_code == 429
    assert client.get("/api/calls", cookies={COOKIE: session}).status_code == 200
    failures = [line for line in lines if "operator" in line and "client" in line]
    assert failures and any("locked out" in line for line in failures)
    assert not any(g in line for g in guesses for line in lines)
    assert len(failures) <= 7  # one line per failure up to the lock-out, not one per request


def test_wrong_logins_are_throttled(serve):
    client = serve()
    codes = [
        client.post("/dashboard/login", data={"token": f"wrong-{n}"}).status_code for n in range(8)
    ]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}


# Sessions


def test_each_login_gets_a_random_cookie_that_logout_revokes(serve):
    client = serve()
    first, second = login(client), login(client)
    assert first != second and TOKEN not in first
    assert client.get("/api/calls", cookies={COOKIE: first}).status_code == 200
    logout = client.post("/dashboard/logout", cookies={COOKIE: first}, follow_redirects=False)
    assert logout.status_code == 303
    client.cookies.clear()
    # a copy of the cookie kept by an attacker is dead after logout
    assert client.get("/api/calls", cookies={COOKIE: first}).status_code == 401
    assert client.get("/dashboard", cookies={COOKIE: first}).status_code == 401
    assert client.get("/api/calls", cookies={COOKIE: second}).status_code == 200


def test_session_cookie_attributes(serve):
    plain = serve()
    response = plain.post("/dashboard/login", data={"token": TOKEN}, follow_redirects=False)
    header = response.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=strict" in header and "max-age=" in header
    assert "secure" not in header
    https = serve(CALLAGENT_PUBLIC_URL="https://agent.example.com")
    response = https.post("/dashboard/login", data={"token": TOKEN}, follow_redirects=False)
    assert "; secure" in response.headers["set-cookie"].lower()


def test_the_session_settings_reach_the_cookie(serve):
    client = serve(CALLAGENT_OPERATOR_SESSION_HOURS="2")
    response = client.post("/dashboard/login", data={"token": TOKEN}, follow_redirects=False)
    assert "max-age=7200" in response.headers["set-cookie"].lower()


def test_a_forged_or_old_style_cookie_is_refused(serve):
    import hashlib
    import hmac

    client = serve()
    old = hmac.new(TOKEN.encode(), b"callagent-dashboard-session", hashlib.sha256).hexdigest()
    for value in (old, "x" * 43, ""):
        assert client.get("/api/calls", cookies={COOKIE: value}).status_code == 401


async def test_sessions_expire_idle_and_absolute():
    from bot.operator.sessions import OperatorSessions
    from integrations.shared_state.memory import MemorySharedState

    now = [1000.0]
    shared = MemorySharedState(clock=lambda: now[0])
    sessions = OperatorSessions(shared, absolute_s=3600, idle_s=600, clock=lambda: now[0])
    idle = await sessions.create()
    now[0] += 601
    assert not await sessions.valid(idle)
    busy = await sessions.create()
    for _ in range(7):
        now[0] += 500
        assert await sessions.valid(busy)  # used within the idle time
    now[0] += 200  # 3700 s after login
    assert not await sessions.valid(busy)


async def test_a_revoked_session_stays_revoked():
    from bot.operator.sessions import OperatorSessions
    from integrations.shared_state.memory import MemorySharedState

    sessions = OperatorSessions(MemorySharedState(), absolute_s=3600, idle_s=600)
    session = await sessions.create()
    assert await sessions.valid(session)
    await sessions.revoke(session)
    assert not await sessions.valid(session)
    await sessions.revoke("made-up")  # nothing to revoke: no error
    assert not await sessions.valid("made-up")


async def test_lockouts_grow_exponentially():
    from bot.operator.throttle import FailureThrottle
    from integrations.shared_state.memory import MemorySharedState

    now = [0.0]
    shared = MemorySharedState(clock=lambda: now[0])
    throttle = FailureThrottle(shared, limit=5, window_s=60, lockout_s=30, clock=lambda: now[0])
    first = [await throttle.failed("a") for _ in range(5)][-1]
    assert first == 30 and await throttle.locked_for("a") == 30
    assert await throttle.locked_for("b") == 0
    now[0] += 31
    assert await throttle.locked_for("a") == 0
    second = [await throttle.failed("a") for _ in range(5)][-1]
    assert second == 60
    now[0] += 61
    await throttle.succeeded("a")
    assert [await throttle.failed("a") for _ in range(5)][-1] == 30


async def test_failures_outside_the_window_are_forgotten():
    from bot.operator.throttle import FailureThrottle
    from integrations.shared_state.memory import MemorySharedState

    now = [0.0]
    shared = MemorySharedState(clock=lambda: now[0])
    throttle = FailureThrottle(shared, limit=3, window_s=60, lockout_s=30, clock=lambda: now[0])
    assert [await throttle.failed("a") for _ in range(2)] == [0, 0]
    assert await throttle.failures("a") == 2
    now[0] += 61
    assert await throttle.failures("a") == 0
    assert [await throttle.failed("a") for _ in range(2)] == [0, 0]


# API docs


def test_api_docs_are_for_operators_only(serve):
    client = serve()
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code in (401, 403), path
        assert client.get(path, headers=BEARER).status_code == 200, path
    assert "/api/calls" in client.get("/openapi.json", headers=BEARER).json()["paths"]
    session = login(client)
    assert client.get("/openapi.json", cookies={COOKIE: session}).status_code == 200
    closed = serve(CALLAGENT_OPERATOR_TOKEN="")
    assert closed.get("/openapi.json").status_code == 403


# Security headers


def test_security_headers_on_pages_and_api(serve):
    client = serve()
    for path in ("/", "/dashboard", "/dashboard/login", "/api/calls", "/healthz", "/nowhere"):
        headers = client.get(path).headers
        csp = headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp, path
        assert headers.get("x-frame-options") == "DENY", path
        assert headers.get("x-content-type-options") == "nosniff", path
        assert headers.get("referrer-policy") == "no-referrer", path
        assert "strict-transport-security" not in headers, path
    https = serve(CALLAGENT_PUBLIC_URL="https://agent.example.com")
    assert "max-age=" in https.get("/healthz").headers["strict-transport-security"]


INLINE = re.compile(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=", re.IGNORECASE)


def test_pages_have_no_inline_script_or_style_the_csp_would_block(serve):
    client = serve()
    session = login(client)
    pages = {
        "/": client.get("/"),
        "/dashboard/login": client.get("/dashboard/login"),
        "/dashboard": client.get("/dashboard", cookies={COOKIE: session}),
        "/dashboard/calls/c0": client.get("/dashboard/calls/c0", cookies={COOKIE: session}),
    }
    for path, page in pages.items():
        assert page.status_code == 200, path
        assert not INLINE.findall(page.text), (path, INLINE.findall(page.text))
    assert 'href="/dashboard/static/dashboard.css"' in pages["/dashboard"].text
    assert client.get("/dashboard/static/dashboard.css").status_code == 200


# A newcomer on loopback without a token


LINK = re.compile(r"http://127\.0\.0\.1:7860/dashboard/login\?token=([A-Za-z0-9_-]+)")


def test_a_loopback_server_without_a_token_prints_a_one_time_login_link(serve):
    with captured_logs() as lines:
        client = serve(CALLAGENT_HOST="127.0.0.1", CALLAGENT_OPERATOR_TOKEN="")
    links = [m for line in lines for m in LINK.findall(line)]
    assert len(links) == 1
    link = f"/dashboard/login?token={links[0]}"
    assert client.get("/dashboard").status_code == 401  # no session yet: says where the link is
    used = client.get(link, follow_redirects=False)
    assert used.status_code == 303 and used.headers["location"] == "/dashboard"
    session = SimpleCookie(used.headers["set-cookie"])[COOKIE].value
    client.cookies.clear()
    assert client.get("/dashboard", cookies={COOKIE: session}).status_code == 200
    assert client.get("/api/calls", cookies={COOKIE: session}).status_code == 200
    again = client.get(link, follow_redirects=False)
    assert again.status_code == 401 and COOKIE not in again.headers.get("set-cookie", "")


def test_a_public_server_without_a_token_offers_no_link(serve):
    with captured_logs() as lines:
        client = serve(CALLAGENT_HOST="0.0.0.0", CALLAGENT_OPERATOR_TOKEN="")
    assert not any("/dashboard/login?token=" in line for line in lines)
    response = client.get("/dashboard/login?token=anything", follow_redirects=False)
    assert response.status_code == 403 and "CALLAGENT_OPERATOR_TOKEN" in response.text
    assert client.get("/dashboard").status_code == 403
