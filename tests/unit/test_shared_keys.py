"""Per-process state moved onto the shared state: two instances stand for two processes.

On ``memory`` both "processes" hold the one in-process engine (the embedded default, where
nothing else can see it); on ``redis`` and ``postgresql`` each holds its own engine object
on one real server, as two server processes (or hosts) do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient

from bot.call.records import CallRecords
from bot.call.runtime import Runtime
from bot.operator.auth import COOKIE
from bot.operator.sessions import LoginLinks, OperatorSessions
from bot.operator.throttle import FailureThrottle
from bot.outbound import ring as ring_module
from bot.outbound.ring import RingError, Rings, RingTokens
from bot.settings import Settings
from bot.web.app import create_app
from bot.web.call_access import CallTokenError, CallTokens
from integrations.shared_state.base import SharedState, SharedStateError
from integrations.shared_state.factory import open_shared_state
from integrations.shared_state.memory import MemorySharedState
from integrations.storage import CallStore
from integrations.storage.caller_id import RedactedCallerId
from processors.agent_definition import AgentDefinition
from tests.support.shared_state import ENGINES, killable_redis, shared_state_url
from transports.twilio_binding import SharedCallSidLedger

TOKEN = "operator-token-for-tests-0123"
ATTEMPT = "at_0123456789abcdef0123"


@pytest.fixture(params=ENGINES)
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[SharedState, SharedState]]:
    """Process A's and process B's shared state."""
    with shared_state_url(request.param) as url:
        a = open_shared_state(url)
        b = open_shared_state(url) if url else a
        try:
            yield a, b
        finally:
            await a.aclose()
            if b is not a:
                await b.aclose()


async def test_a_login_on_one_process_is_valid_on_another_and_logout_ends_it_everywhere(
    pair: tuple[SharedState, SharedState],
) -> None:
    a, b = (OperatorSessions(s, absolute_s=3600, idle_s=600) for s in pair)
    session = await a.create()
    assert await b.valid(session) and await a.valid(session)
    await b.revoke(session)
    assert not await a.valid(session) and not await b.valid(session)
    assert not await b.valid("x" * 43)


async def test_a_request_racing_a_logout_does_not_bring_the_session_back(
    pair: tuple[SharedState, SharedState],
) -> None:
    a, b = (OperatorSessions(s, absolute_s=3600, idle_s=600) for s in pair)
    for _ in range(20):
        session = await a.create()
        await asyncio.gather(*(a.valid(session) for _ in range(5)), b.revoke(session))
        assert not await a.valid(session) and not await b.valid(session)


async def test_wrong_tokens_on_two_processes_add_up_to_one_lock_out(
    pair: tuple[SharedState, SharedState],
) -> None:
    a, b = (FailureThrottle(s, limit=5, lockout_s=30, secret=TOKEN) for s in pair)
    for throttle in (a, b, a, b):
        assert await throttle.failed("203.0.113.7") == 0
    assert await a.failures("203.0.113.7") == 4
    assert await b.failed("203.0.113.7") == 30  # the fifth, counted on either process
    assert await a.locked_for("203.0.113.7") > 29 and await b.locked_for("203.0.113.7") > 29
    assert await a.locked_for("198.51.100.1") == 0
    await a.succeeded("203.0.113.7")
    assert await b.locked_for("203.0.113.7") == 0


async def test_failures_racing_on_two_processes_start_one_lock_out(
    pair: tuple[SharedState, SharedState],
) -> None:
    a, b = (FailureThrottle(s, limit=5, lockout_s=30, secret=TOKEN) for s in pair)
    lockouts = await asyncio.gather(*((a, b)[i % 2].failed("client") for i in range(10)))
    assert lockouts.count(0) >= 4 and max(lockouts) == 30  # one lock-out, one step
    assert 29 < await b.locked_for("client") <= 30


async def test_a_login_link_printed_by_one_process_works_once_on_any(
    pair: tuple[SharedState, SharedState],
) -> None:
    a, b = (LoginLinks(s, "http://127.0.0.1:7860") for s in pair)
    token = (await a.issue()).split("token=", 1)[1]
    assert await a.outstanding()
    assert await b.redeem(token)
    assert not await a.redeem(token) and not await b.redeem(token)
    assert not await a.outstanding()
    again = (await a.issue()).split("token=", 1)[1]
    racing = await asyncio.gather(a.redeem(again), b.redeem(again), a.redeem(again))
    assert sorted(racing) == [False, False, True]


async def test_a_call_sid_streams_once_across_processes(
    pair: tuple[SharedState, SharedState],
) -> None:
    a, b = (SharedCallSidLedger(s) for s in pair)
    assert await a.claim("CA1")
    assert not await b.claim("CA1") and await b.is_known("CA1")  # live on A
    await a.finish("CA1")
    assert not await b.claim("CA1") and await b.is_known("CA1")  # a replay, finished
    claims = await asyncio.gather(*((a, b)[i % 2].claim("CA2") for i in range(8)))
    assert claims.count(True) == 1


async def test_a_call_token_is_used_once_across_processes(
    pair: tuple[SharedState, SharedState],
) -> None:
    a, b = (CallTokens(TOKEN, 120, shared=s) for s in pair)
    minted = a.mint("crm-42").token  # any process mints, any accepts
    checked = await b.check(minted, "crm-42")
    await b.use(*checked)
    with pytest.raises(CallTokenError, match="already used"):
        await a.check(minted, "crm-42")
    # two offers with one token, checked on both before either used it: one call starts
    second = a.mint().token
    both = [await a.check(second), await b.check(second)]
    used = await asyncio.gather(a.use(*both[0]), b.use(*both[1]), return_exceptions=True)
    assert sum(isinstance(u, CallTokenError) for u in used) == 1


class _Finished:
    def __init__(self) -> None:
        self.ended: list[tuple[str, str]] = []

    async def finish(self, attempt_id: str, fallback: str) -> None:
        self.ended.append((attempt_id, str(fallback)))


async def test_a_ring_started_on_one_process_is_answered_through_another(
    pair: tuple[SharedState, SharedState],
) -> None:
    finished = _Finished()
    # no configured secret (a loopback server without tokens): the shared one signs
    a, b = (
        Rings(RingTokens("", s, ttl_s=30), cast(Any, finished), ring_secs=0.3, shared=s)
        for s in pair
    )
    ring = await a.start(ATTEMPT)
    assert await b.check(ring) == ATTEMPT
    assert await b.answer(ring) == ATTEMPT
    with pytest.raises(RingError):
        await a.answer(ring)  # used up everywhere
    await asyncio.sleep(0.5)
    assert finished.ended == []  # A's timer found it answered: no "no-answer"
    await a.close()


async def test_a_ring_declined_elsewhere_or_unanswered_ends_once(
    pair: tuple[SharedState, SharedState],
) -> None:
    finished = _Finished()
    a, b = (
        Rings(RingTokens(TOKEN, s, ttl_s=30), cast(Any, finished), ring_secs=0.2, shared=s)
        for s in pair
    )
    declined = await a.start(ATTEMPT)
    answers = await asyncio.gather(b.answer(declined), a.answer(declined), return_exceptions=True)
    assert sum(isinstance(x, RingError) for x in answers) == 1
    other = "at_0123456789abcdef9999"
    unanswered = await a.start(other)
    for _ in range(100):
        if finished.ended:
            break
        await asyncio.sleep(0.02)
    assert finished.ended == [(other, "no-answer")]
    with pytest.raises(RingError):
        await b.answer(unanswered)


class _HiccupOnDelete(MemorySharedState):
    """The shared state failing its first delete (a Redis reconnect)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def delete(self, key: str) -> bool:
        if self.failures:
            self.failures -= 1
            raise SharedStateError("Redis unreachable (delete)", retryable=True)
        return await super().delete(key)


async def test_a_ring_time_out_survives_a_shared_state_hiccup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ring_module, "TIME_OUT_RETRY_S", 0.01)
    finished = _Finished()
    shared = _HiccupOnDelete()
    rings = Rings(RingTokens(TOKEN, shared, ttl_s=30), cast(Any, finished), 0.05, shared)
    await rings.start(ATTEMPT)
    for _ in range(100):
        if finished.ended:
            break
        await asyncio.sleep(0.02)
    assert finished.ended == [(ATTEMPT, "no-answer")]
    assert shared.failures == 0
    await rings.close()


class _DownAfterClaim(MemorySharedState):
    """The shared state that goes away while a call streams (writes fail)."""

    down = False

    async def put(self, key: str, value: str, *, ttl_s: float, only_if_absent: bool = False):
        if self.down:
            raise SharedStateError("Redis unreachable (put)", retryable=True)
        return await super().put(key, value, ttl_s=ttl_s, only_if_absent=only_if_absent)


async def test_a_stream_ending_while_the_shared_state_is_down_ends_cleanly_and_stays_known():
    shared = _DownAfterClaim()
    ledger = SharedCallSidLedger(shared)
    assert await ledger.claim("CA0123")
    shared.down = True
    await ledger.finish("CA0123")  # logged, not raised: the call's end is no error
    shared.down = False
    assert await ledger.is_known("CA0123")
    assert not await ledger.claim("CA0123")  # a replay is still refused


# two real server apps (create_app) on one Redis


def server_on(url: str, agent: AgentDefinition, call_store: CallStore) -> TestClient:
    """The real server app on a runtime whose shared state is at ``url``."""
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
        shared=open_shared_state(url),
    )
    return TestClient(create_app(settings, runtime), raise_server_exceptions=False)


def test_a_lost_shared_state_answers_503_and_lets_nothing_through(
    agent: AgentDefinition, call_store: CallStore
) -> None:
    with killable_redis() as redis, server_on(redis.url, agent, call_store) as client:
        login = client.post("/dashboard/login", data={"token": TOKEN}, follow_redirects=False)
        session = {COOKIE: login.cookies[COOKIE]}
        assert client.get("/api/calls", cookies=session).status_code == 200
        redis.kill()
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        for response in (
            client.get("/api/calls", cookies=session),
            client.get("/api/calls", headers=bearer),
            client.post("/api/call-tokens", headers=bearer),
        ):
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "5"


def test_two_servers_share_operator_logins_and_lock_outs(
    agent: AgentDefinition, call_store: CallStore
) -> None:
    with (
        shared_state_url("redis") as url,
        server_on(url, agent, call_store) as a,
        server_on(url, agent, call_store) as b,
    ):
        login = a.post("/dashboard/login", data={"token": TOKEN}, follow_redirects=False)
        assert login.status_code == 303
        session = {COOKIE: login.cookies[COOKIE]}
        assert b.get("/api/calls", cookies=session).status_code == 200
        b.post("/dashboard/logout", cookies=session, follow_redirects=False)
        assert a.get("/api/calls", cookies=session).status_code == 401
        wrong = {"Authorization": "Bearer wrong-token-0123456789"}
        codes = [(a, b)[i % 2].get("/api/calls", headers=wrong).status_code for i in range(6)]
        assert codes == [401] * 5 + [429]  # five failures across both, then locked out
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert a.get("/api/calls", headers=right).status_code == 429  # on both
        assert b.get("/api/calls", headers=right).status_code == 429
