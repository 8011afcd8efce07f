"""A call's event stream in the shared state, read through another process's reader.

Two :class:`SharedCallEvents` stand for the owner and a process that serves
``GET /api/calls/{id}/events`` for a call it does not run: on one
:class:`MemorySharedState`, or on two connections to one Redis or PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bot.operator.auth import OperatorAuth
from bot.operator.events import CallEventBus, create_call_events_router
from bot.operator.shared_events import SharedCallEvents
from integrations.shared_state.base import SharedState, SharedStateError
from integrations.shared_state.calls import CallOwners
from integrations.shared_state.factory import open_shared_state
from integrations.shared_state.memory import MemorySharedState
from tests.support.shared_state import ENGINES, shared_state_url

TOKEN = "t" * 32


@pytest.fixture(scope="module", params=ENGINES)
def engine_url(request: pytest.FixtureRequest) -> Iterator[str]:
    with shared_state_url(request.param) as url:
        yield url


@pytest.fixture
async def states(engine_url: str) -> AsyncIterator[tuple[SharedState, SharedState, str]]:
    """Two processes' shared state, and an id prefix of this test's calls."""
    one = open_shared_state(engine_url)
    other = open_shared_state(engine_url) if engine_url else one
    yield one, other, uuid.uuid4().hex[:8]
    await one.aclose()
    await other.aclose()


async def test_the_owners_events_are_read_elsewhere_by_either_id_with_the_same_pages():
    shared = MemorySharedState()
    owner, elsewhere, local = SharedCallEvents(shared), SharedCallEvents(shared), CallEventBus()
    observer = owner.observer("call-1", "CA1")
    bus_observer = local.observer("call-1", "CA1")
    for o in (observer, bus_observer):
        o.publish("nlu", {"intent": "hours", "band": "act"})
        o.publish("reply", {"intent": "hours", "ends_call": False, "hands_off": False})
    await asyncio.sleep(0.05)  # the writer task appends in order
    page = await elsewhere.page("CA1", 0, 0.0)
    assert page is not None and page["call_id"] == "call-1" and page["active"]
    assert [(e["seq"], e["type"]) for e in page["events"]] == [(1, "nlu"), (2, "reply")]
    assert page["events"][0]["intent"] == "hours" and page["next"] == 2
    same = await local.page("CA1", 0, 0.0)
    assert same is not None
    strip = lambda p: [{k: v for k, v in e.items() if k != "at_s"} for e in p["events"]]  # noqa: E731
    assert strip(same) == strip(page) and same["next"] == page["next"]
    assert (await elsewhere.page("call-1", 2, 0.0))["events"] == []  # type: ignore[index]
    assert await elsewhere.page("CA404", 0, 0.0) is None


async def test_a_waiting_reader_elsewhere_wakes_on_the_next_event_and_on_the_end(states):
    one, other, run = states
    owner, elsewhere = SharedCallEvents(one), SharedCallEvents(other)
    observer = owner.observer(f"call-{run}", f"CA{run}")
    await asyncio.sleep(0.05)
    waiting = asyncio.create_task(elsewhere.page(f"CA{run}", 0, 5.0))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    observer.publish("bot_started", {})
    page = await asyncio.wait_for(waiting, 2)
    assert page is not None and [e["type"] for e in page["events"]] == ["bot_started"]

    waiting = asyncio.create_task(elsewhere.page(f"CA{run}", 1, 5.0))
    await asyncio.sleep(0.05)
    await observer.cleanup()  # the call ended
    page = await asyncio.wait_for(waiting, 2)
    assert page is not None and page["events"] == [] and page["active"] is False
    later = await elsewhere.page(f"call-{run}", 0, 5.0)  # ended: no wait
    assert later is not None and not later["active"] and len(later["events"]) == 1


async def test_a_callback_noted_on_any_process_joins_the_calls_stream_also_after_its_end(states):
    one, other, run = states
    owner, elsewhere = SharedCallEvents(one), SharedCallEvents(other)
    observer = owner.observer(f"call-{run}", f"CA{run}")
    observer.publish("transfer", {"ok": True, "method": "twilio_redirect"})
    await observer.cleanup()
    await elsewhere.note(f"call-{run}", "transfer_dial", {"status": "no-answer"})
    await elsewhere.note(f"call-404-{run}", "transfer_dial", {"status": "busy"})  # ignored
    page = await owner.page(f"CA{run}", 0, 0.0)
    assert page is not None
    assert [e["type"] for e in page["events"]] == ["transfer", "transfer_dial"]
    assert page["events"][1]["status"] == "no-answer" and page["events"][1]["at_s"] >= 0


async def test_a_call_whose_owner_died_is_not_active_and_the_log_stays_bounded():
    shared = MemorySharedState()
    owners = CallOwners(shared, "hostA:1:aa")
    owner = SharedCallEvents(shared, owners, max_events=3)
    elsewhere = SharedCallEvents(shared, CallOwners(shared, "hostB:2:bb"))
    async with owners.claim("call-1", "CA1"):
        observer = owner.observer("call-1", "CA1")
        for i in range(5):
            observer.publish("nlu", {"intent": f"i{i}"})
        await asyncio.sleep(0.05)
        page = await elsewhere.page("CA1", 0, 0.0)
        assert page is not None and page["active"]
        assert [e["seq"] for e in page["events"]] == [2, 3, 4, 5]  # 3 events + the end's room
    # released without an end marker (the process was lost): not active any more
    page = await elsewhere.page("CA1", 5, 0.0)
    assert page is not None and page["active"] is False


def test_the_endpoint_serves_the_shared_streams_and_refuses_overlong_ids():
    shared = MemorySharedState()
    owner = SharedCallEvents(shared)

    async def run_call() -> None:
        observer = owner.observer("abc", "CA9")
        observer.publish("nlu", {"intent": "location"})
        await observer.cleanup()

    asyncio.run(run_call())
    app = FastAPI()
    app.include_router(create_call_events_router(SharedCallEvents(shared), OperatorAuth(TOKEN)))
    client = TestClient(app)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = client.get("/api/calls/CA9/events?wait=1", headers=auth).json()
    assert body["call_id"] == "abc" and body["events"][0]["intent"] == "location"
    assert body["active"] is False
    assert client.get("/api/calls/zzz/events", headers=auth).status_code == 404
    assert client.get(f"/api/calls/{'x' * 200}/events", headers=auth).status_code == 404


class Unreachable(MemorySharedState):
    """Every append fails, as with a Redis server gone."""

    def __init__(self) -> None:
        super().__init__()
        self.appends = 0

    async def append(self, log: str, entry: str, *, max_len: int, ttl_s: float) -> int:
        self.appends += 1
        raise SharedStateError("Redis unreachable (append)")


async def test_an_unreachable_engine_costs_the_call_one_failure_not_one_per_event():
    shared = Unreachable()
    observer = SharedCallEvents(shared).observer("call-1", "CA1")
    for _ in range(50):
        observer.publish("bot_started", {})
    await asyncio.wait_for(observer.cleanup(), 5)  # the call's end is not held up
    assert shared.appends == 2  # the first event, then the end marker


class Stalled(MemorySharedState):
    """Appends hang until the engine answers again (a server that stopped answering)."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()

    async def append(self, log: str, entry: str, *, max_len: int, ttl_s: float) -> int:
        await self.answer.wait()
        return await super().append(log, entry, max_len=max_len, ttl_s=ttl_s)


async def test_a_stalled_engine_does_not_hold_the_calls_end_and_the_end_is_written_behind(
    monkeypatch: pytest.MonkeyPatch,
):
    from bot.operator import shared_events

    monkeypatch.setattr(shared_events, "END_WAIT_S", 0.05)
    shared = Stalled()
    events = SharedCallEvents(shared)
    observer = events.observer("call-1", "CA1")
    observer.publish("bot_started", {})
    await asyncio.wait_for(observer.cleanup(), 2)  # returns though nothing is written yet
    del observer  # the call is gone: only the events object keeps its writer
    shared.answer.set()
    for _ in range(100):
        page = await events.page("CA1", 0, 0.0)
        if page is not None and not page["active"]:
            break
        await asyncio.sleep(0.01)
    assert page is not None and not page["active"]
    assert [e["type"] for e in page["events"]] == ["bot_started"]
