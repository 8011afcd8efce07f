"""Call ownership and the owner's inbox, on every shared-state engine.

Two :class:`CallInbox` objects with different process ids stand for two processes: on
one :class:`MemorySharedState`, or on two connections to one Redis or PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from integrations.shared_state.base import SharedStateError
from integrations.shared_state.calls import (
    CallInbox,
    CallOwners,
    CallUnreachableError,
    Owner,
    owner_key,
)
from integrations.shared_state.factory import open_shared_state
from integrations.shared_state.memory import MemorySharedState
from tests.support.shared_state import ENGINES, shared_state_url


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_claimed_call_is_found_by_either_id_until_it_ends():
    owners = CallOwners(MemorySharedState(), "hostA:1:aa")
    async with owners.claim("call-1", "CA1") as claim:
        assert await owners.owner_of("call-1") == Owner("hostA:1:aa", "call-1")
        assert await owners.owner_of("CA1") == Owner("hostA:1:aa", "call-1")
        await claim.add_id("CA2")
        assert await owners.owner_of("CA2") == Owner("hostA:1:aa", "call-1")
    for call_id in ("call-1", "CA1", "CA2"):
        assert await owners.owner_of(call_id) is None


async def test_the_lease_is_refreshed_while_the_call_runs_and_lapses_after_a_crash():
    clock = Clock()
    shared = MemorySharedState(clock)
    owners = CallOwners(shared, "hostA:1:aa", lease_s=30, refresh_s=0.01)
    async with owners.claim("call-1"):
        clock.now += 25
        await asyncio.sleep(0.05)  # a refresh or more
        clock.now += 25  # past the first lease: refreshed, still owned
        assert await owners.owner_of("call-1") is not None
        crashed = CallOwners(shared, "hostB:2:bb", lease_s=30, refresh_s=3600)
        claim = crashed.claim("call-2")
        await claim.__aenter__()  # a process that never releases (killed)
        clock.now += 31
        assert await owners.owner_of("call-2") is None
        await claim.__aexit__(None, None, None)


async def test_release_leaves_a_key_another_process_took_over():
    shared = MemorySharedState()
    first = CallOwners(shared, "hostA:1:aa")
    second = CallOwners(shared, "hostB:2:bb")
    async with second.claim("call-1b") as moved:
        async with first.claim("call-1", "CA1"):
            await moved.add_id("CA1")  # the CallSid's stream moved to B
        assert await first.owner_of("CA1") == Owner("hostB:2:bb", "call-1b")
        assert await first.owner_of("call-1") is None
    assert await shared.get(owner_key("CA1")) is None


@pytest.fixture(scope="module", params=ENGINES)
def engine_url(request: pytest.FixtureRequest) -> Iterator[str]:
    with shared_state_url(request.param) as url:
        yield url


@pytest.fixture
async def two_processes(engine_url: str) -> AsyncIterator[tuple[CallInbox, CallInbox]]:
    one = open_shared_state(engine_url)
    other = open_shared_state(engine_url) if engine_url else one
    run = uuid.uuid4().hex[:8]  # this test's process ids: nothing left by another test
    a = CallInbox(CallOwners(one, f"hostA:1:{run}"))
    b = CallInbox(CallOwners(other, f"hostB:2:{run}"))
    await a.start()
    await b.start()
    yield a, b
    await a.aclose()
    await b.aclose()
    await one.aclose()
    await other.aclose()


async def test_ask_reaches_the_owner_and_returns_its_reply(two_processes):
    a, b = two_processes
    seen: list[tuple[str, dict]] = []

    async def verdict(call_id: str, payload: dict) -> dict:
        seen.append((call_id, payload))
        return {"delivered": True}

    a.handle("machine_verdict", verdict)
    b.handle("machine_verdict", verdict)
    async with a.owners.claim("call-1", "CA1"):
        reply = await b.ask("CA1", "machine_verdict", {"verdict": "human"}, timeout_s=2)
        assert reply == {"delivered": True}
        assert await a.ask("call-1", "machine_verdict", {"verdict": "machine"}) == reply
    # handled on A both times, under our call id
    assert seen == [("call-1", {"verdict": "human"}), ("call-1", {"verdict": "machine"})]


async def test_ask_fails_clearly_without_an_owner_a_handler_or_an_answer(two_processes):
    a, b = two_processes
    with pytest.raises(CallUnreachableError) as no_owner:
        await b.ask("CA404", "machine_verdict", {}, timeout_s=1)
    assert no_owner.value.reason == "no_owner"
    async with a.owners.claim("call-1"):
        with pytest.raises(CallUnreachableError) as refused:
            await b.ask("call-1", "unknown_kind", {}, timeout_s=2)
        assert refused.value.reason == "refused" and "no handler" in str(refused.value)

        async def broken(_call_id: str, _payload: dict) -> dict:
            raise ValueError("boom")

        a.handle("broken", broken)
        with pytest.raises(CallUnreachableError) as failed:
            await b.ask("call-1", "broken", {}, timeout_s=2)
        assert failed.value.reason == "refused" and "ValueError" in str(failed.value)

        await a.aclose()  # the owner stops answering (hung, or gone before its lease lapsed)
        with pytest.raises(CallUnreachableError) as silent:
            await b.ask("call-1", "broken", {}, timeout_s=0.2)
        assert silent.value.reason == "timeout"


async def test_a_malformed_request_is_dropped_and_the_inbox_keeps_serving(two_processes):
    a, b = two_processes

    async def echo(call_id: str, payload: dict) -> dict:
        return {"call_id": call_id, **payload}

    a.handle("echo", echo)
    shared = a.owners.shared
    await shared.publish(f"callagent:inbox:{a.process_id}", "not json")
    await shared.publish(f"callagent:inbox:{a.process_id}", '{"kind": "echo"}')
    async with a.owners.claim("call-1"):
        assert await b.ask("call-1", "echo", {"n": 1}, timeout_s=2) == {"call_id": "call-1", "n": 1}


class _FlakySubscribe(MemorySharedState):
    """Subscriptions the engine ends (a lost link), and a first resubscribe that fails."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    async def subscribe(self, channel: str):
        if self.failures:
            self.failures -= 1
            raise SharedStateError("Redis unreachable (subscribe)", retryable=True)
        return await super().subscribe(channel)


async def test_an_inbox_that_lost_its_subscription_listens_again_after_a_failed_try(monkeypatch):
    from integrations.shared_state import calls as calls_module

    monkeypatch.setattr(calls_module, "RESUBSCRIBE_S", 0.01)
    shared = _FlakySubscribe()
    owner, asker = CallInbox(CallOwners(shared, "A:1:a")), CallInbox(CallOwners(shared, "B:2:b"))

    async def answer(call_id: str, payload: dict) -> dict:
        return {"call": call_id}

    owner.handle("ping", answer)
    await owner.start()
    await asker.start()
    shared.failures = 2  # the first two resubscribes fail
    await shared.aclose()  # every subscription ends, as a lost engine would end them
    for _ in range(200):
        if shared.failures == 0 and len(shared._channels) == 4:  # both inboxes, both replies
            break
        await asyncio.sleep(0.01)
    async with owner.owners.claim("call-1"):
        assert await asker.ask("call-1", "ping", {}, timeout_s=2) == {"call": "call-1"}
    await owner.aclose()
    await asker.aclose()


class _StalledPuts(MemorySharedState):
    """An engine whose writes hang (a server that stopped answering)."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()

    async def put(self, key: str, value: str, *, ttl_s: float, only_if_absent: bool = False):
        await self.answer.wait()
        return await super().put(key, value, ttl_s=ttl_s, only_if_absent=only_if_absent)


async def test_a_call_starts_though_its_ownership_cannot_be_recorded_yet():
    shared = _StalledPuts()
    owners = CallOwners(shared, "hostA:1:aa", claim_wait_s=0.05)
    async with asyncio.timeout(2):
        async with owners.claim("call-1"):
            assert await owners.owner_of("call-1") is None  # not recorded yet: the call runs
            shared.answer.set()  # the engine answers again
            for _ in range(100):
                if await owners.owner_of("call-1") is not None:
                    break
                await asyncio.sleep(0.01)
            assert await owners.owner_of("call-1") == Owner("hostA:1:aa", "call-1")
    assert await owners.owner_of("call-1") is None


async def test_a_call_ending_before_its_ownership_was_recorded_leaves_no_owner():
    shared = _StalledPuts()
    owners = CallOwners(shared, "hostA:1:aa", claim_wait_s=0.01)
    async with asyncio.timeout(2):
        async with owners.claim("call-1"):
            pass
    shared.answer.set()
    await asyncio.sleep(0.05)
    assert await owners.owner_of("call-1") is None
