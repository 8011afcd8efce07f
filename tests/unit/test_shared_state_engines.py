"""One contract for every shared-state engine: in-process, Redis and PostgreSQL.

Each test runs against each engine; for Redis and PostgreSQL the second instance is a
second set of connections to the same server (as another process would have), for the
in-process engine it is the same instance (nothing else could share its memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import pytest

from integrations.shared_state.base import SharedState, SharedStateError, Subscription
from integrations.shared_state.factory import check_reachable, open_shared_state
from integrations.shared_state.memory import MemorySharedState
from tests.support.shared_state import ENGINES, killable_redis, shared_state_url

T = TypeVar("T")

PATIENCE_S = 10.0
"""Longest a test waits for something that must happen (expiry, a message)."""


@dataclass
class Pair:
    """Two instances sharing one engine (``one`` and ``other`` are "two processes")."""

    engine: str
    one: SharedState
    other: SharedState
    prefix: str

    def name(self, what: str) -> str:
        """A key, log or channel name of this test only."""
        return f"callagent:test:{self.prefix}:{what}"


@pytest.fixture(scope="module", params=ENGINES)
def engine_url(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """``(engine, url)``, one server per engine for the whole module."""
    with shared_state_url(request.param) as url:
        yield request.param, url


@pytest.fixture
async def pair(engine_url: tuple[str, str]) -> AsyncIterator[Pair]:
    """Two instances on the module's engine, closed after the test."""
    engine, url = engine_url
    one = open_shared_state(url)
    other = one if engine == "memory" else open_shared_state(url)
    try:
        yield Pair(engine, one, other, uuid.uuid4().hex[:10])
    finally:
        await one.aclose()
        await other.aclose()


async def _until_gone(state: SharedState, key: str) -> None:
    async def poll() -> None:
        while await state.get(key) is not None:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), PATIENCE_S)


async def _next(subscription: Subscription) -> str | None:
    """The subscription's next message, or None when its iteration ended."""

    async def first() -> str | None:
        async for message in subscription:
            return message
        return None

    return await asyncio.wait_for(first(), PATIENCE_S)


async def test_distributed_says_whether_other_processes_share_it(pair: Pair) -> None:
    assert pair.one.distributed is (pair.engine != "memory")
    assert isinstance(pair.one, SharedState)
    await check_reachable(pair.one)


async def test_put_get_delete(pair: Pair) -> None:
    key = pair.name("k")
    assert await pair.one.get(key) is None
    assert await pair.one.put(key, "v1", ttl_s=60) is True
    assert await pair.other.get(key) == "v1"
    assert await pair.other.put(key, "v2", ttl_s=60) is True  # overwrites
    assert await pair.one.get(key) == "v2"
    assert await pair.one.put(key, "v3", ttl_s=60, only_if_absent=True) is False
    assert await pair.one.get(key) == "v2"
    assert await pair.other.delete(key) is True
    assert await pair.other.delete(key) is False
    assert await pair.one.get(key) is None
    assert await pair.one.put(key, "v4", ttl_s=60, only_if_absent=True) is True
    assert await pair.other.get(key) == "v4"


async def test_keys_expire_and_can_then_be_taken_again(pair: Pair) -> None:
    key = pair.name("lease")
    assert await pair.one.put(key, "owner-a", ttl_s=0.2, only_if_absent=True)
    await _until_gone(pair.other, key)
    assert await pair.other.put(key, "owner-b", ttl_s=60, only_if_absent=True)
    assert await pair.one.get(key) == "owner-b"


async def test_ttl_must_be_positive(pair: Pair) -> None:
    with pytest.raises(ValueError):
        await pair.one.put(pair.name("k"), "v", ttl_s=0)
    with pytest.raises(ValueError):
        await pair.one.add(pair.name("c"), 1, ttl_s=-1)


async def test_only_if_absent_has_exactly_one_winner(pair: Pair) -> None:
    key = pair.name("owner")
    instances = [pair.one, pair.other] * 10
    won = await asyncio.gather(
        *(s.put(key, f"p{i}", ttl_s=60, only_if_absent=True) for i, s in enumerate(instances))
    )
    assert won.count(True) == 1
    assert await pair.one.get(key) == f"p{won.index(True)}"


async def test_add_counts_atomically_across_instances(pair: Pair) -> None:
    key = pair.name("count")
    assert await pair.one.add(key, 5, ttl_s=60) == 5
    assert await pair.other.add(key, -2, ttl_s=60) == 3
    instances = [pair.one, pair.other] * 15
    values = await asyncio.gather(*(s.add(key, 1, ttl_s=60) for s in instances))
    assert sorted(values) == list(range(4, 34))
    assert await pair.one.get(key) == "33"


async def test_add_sets_the_expiry_only_when_it_creates_the_counter(pair: Pair) -> None:
    key = pair.name("window")
    assert await pair.one.add(key, 1, ttl_s=0.3) == 1
    assert await pair.other.add(key, 1, ttl_s=600) == 2  # does not extend the window
    await _until_gone(pair.one, key)
    assert await pair.other.add(key, 1, ttl_s=60) == 1  # a new window


async def test_logs_number_entries_and_keep_the_newest(pair: Pair) -> None:
    log = pair.name("events")
    seqs = [await pair.one.append(log, f"e{i}", max_len=3, ttl_s=60) for i in range(1, 6)]
    assert seqs == [1, 2, 3, 4, 5]
    assert await pair.other.read(log, 0) == [(3, "e3"), (4, "e4"), (5, "e5")]
    assert await pair.other.read(log, 4) == [(5, "e5")]
    assert await pair.other.read(log, 5) == []
    assert await pair.other.append(log, "e6", max_len=3, ttl_s=60) == 6  # never reused
    assert await pair.one.read(log, 0) == [(4, "e4"), (5, "e5"), (6, "e6")]
    assert await pair.one.read(pair.name("no-such-log"), 0) == []


async def test_appends_from_two_instances_get_distinct_numbers(pair: Pair) -> None:
    log = pair.name("busy")
    instances = [pair.one, pair.other] * 10
    seqs = await asyncio.gather(
        *(s.append(log, f"e{i}", max_len=100, ttl_s=60) for i, s in enumerate(instances))
    )
    assert sorted(seqs) == list(range(1, 21))
    entries = await pair.one.read(log, 0)
    assert [seq for seq, _ in entries] == list(range(1, 21))
    assert {entry for _, entry in entries} == {f"e{i}" for i in range(20)}


async def test_a_log_expires_after_its_last_append(pair: Pair) -> None:
    log = pair.name("short")
    await pair.one.append(log, "a", max_len=10, ttl_s=0.3)

    async def gone() -> None:
        while await pair.other.read(log, 0):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(gone(), PATIENCE_S)


async def test_read_waits_for_an_append_on_another_instance(pair: Pair) -> None:
    log = pair.name("live")
    assert await pair.one.read(log, 0, wait_s=0.1) == []  # nothing: returns empty
    await pair.other.append(log, "first", max_len=10, ttl_s=60)
    reader = asyncio.create_task(pair.one.read(log, 1, wait_s=PATIENCE_S))
    await asyncio.sleep(0.2)  # let the reader start waiting (either order is correct)
    assert not reader.done()
    await pair.other.append(log, "second", max_len=10, ttl_s=60)
    assert await asyncio.wait_for(reader, PATIENCE_S) == [(2, "second")]


async def test_read_waits_for_a_log_that_does_not_exist_yet(pair: Pair) -> None:
    log = pair.name("later")
    reader = asyncio.create_task(pair.one.read(log, 0, wait_s=PATIENCE_S))
    await asyncio.sleep(0.2)
    await pair.other.append(log, "hello", max_len=10, ttl_s=60)
    assert await asyncio.wait_for(reader, PATIENCE_S) == [(1, "hello")]


async def test_publish_reaches_every_subscriber_on_other_instances(pair: Pair) -> None:
    channel = pair.name("inbox")
    first = await pair.one.subscribe(channel)
    second = await pair.one.subscribe(channel)
    third = await pair.other.subscribe(channel)
    await pair.other.publish(channel, "m1")
    await pair.one.publish(channel, "m2")
    for subscription in (first, second, third):
        assert await _next(subscription) == "m1"
        assert await _next(subscription) == "m2"
    await pair.one.publish(pair.name("elsewhere"), "not for them")
    await pair.one.publish(channel, "m3")
    assert await _next(third) == "m3"
    for subscription in (first, second, third):
        await subscription.aclose()


async def test_a_closed_subscription_gets_nothing_more(pair: Pair) -> None:
    channel = pair.name("owner")
    staying = await pair.one.subscribe(channel)
    leaving = await pair.one.subscribe(channel)
    await leaving.aclose()
    await leaving.aclose()  # idempotent
    await pair.other.publish(channel, "after")
    assert await _next(staying) == "after"
    assert await _next(leaving) is None  # the iteration ended without it
    await staying.aclose()


async def test_closing_the_engine_ends_every_subscription(pair: Pair) -> None:
    subscription = await pair.one.subscribe(pair.name("closing"))
    await pair.one.aclose()
    assert await _next(subscription) is None


async def test_publish_with_no_subscriber_is_dropped(pair: Pair) -> None:
    channel = pair.name("nobody")
    await pair.one.publish(channel, "lost")
    subscription = await pair.other.subscribe(channel)
    await pair.one.publish(channel, "kept")
    assert await _next(subscription) == "kept"
    await subscription.aclose()


def test_open_shared_state_names_the_setting_for_unknown_urls() -> None:
    assert isinstance(open_shared_state(""), MemorySharedState)
    with pytest.raises(ValueError, match="CALLAGENT_SHARED_STATE_URL"):
        open_shared_state("mysql://db/x")


async def test_an_unreachable_server_fails_start_up_naming_the_setting() -> None:
    from simulator.ports import free_tcp_port

    state = open_shared_state(f"redis://127.0.0.1:{free_tcp_port()}/0")
    with pytest.raises(SharedStateError, match="CALLAGENT_SHARED_STATE_URL") as raised:
        await asyncio.wait_for(check_reachable(state), PATIENCE_S * 2)
    assert raised.value.retryable is False
    await state.aclose()


async def test_a_killed_redis_raises_a_retryable_error_not_a_hang() -> None:
    with killable_redis() as server:
        state = open_shared_state(server.url)
        log = "callagent:test:killed"
        await state.put("callagent:test:k", "v", ttl_s=60)
        subscription = await state.subscribe("callagent:test:ch")
        reader = asyncio.create_task(state.read(log, 0, wait_s=PATIENCE_S * 3))
        await asyncio.sleep(0.2)
        server.kill()
        for operation in (
            reader,
            state.get("callagent:test:k"),
            state.put("callagent:test:k", "w", ttl_s=60),
            state.append(log, "x", max_len=5, ttl_s=60),
            state.publish("callagent:test:ch", "m"),
        ):
            with pytest.raises(SharedStateError) as raised:
                await asyncio.wait_for(operation, PATIENCE_S * 2)
            assert raised.value.retryable is True
        await subscription.aclose()
        await asyncio.wait_for(state.aclose(), PATIENCE_S)


async def test_postgresql_refuses_messages_notify_cannot_carry(pair: Pair) -> None:
    if pair.engine != "postgresql":
        pytest.skip("a limit of PostgreSQL NOTIFY")
    from integrations.shared_state.postgres import MAX_MESSAGE_BYTES

    channel = pair.name("big")
    subscription = await pair.other.subscribe(channel)
    with pytest.raises(SharedStateError, match="too big for PostgreSQL NOTIFY") as raised:
        await pair.one.publish(channel, "x" * (MAX_MESSAGE_BYTES + 1))
    assert raised.value.retryable is False
    await pair.one.publish(channel, "x" * MAX_MESSAGE_BYTES)
    assert await _next(subscription) == "x" * MAX_MESSAGE_BYTES
    await subscription.aclose()


async def test_postgresql_sweeps_expired_rows(pair: Pair, engine_url: tuple[str, str]) -> None:
    if pair.engine != "postgresql":
        pytest.skip("rows of the PostgreSQL tables")
    import psycopg
    from psycopg import sql

    from integrations.shared_state.postgres import PostgresSharedState

    assert isinstance(pair.one, PostgresSharedState)
    await pair.one.put(pair.name("k"), "v", ttl_s=0.1)
    await pair.one.append(pair.name("log"), "e", max_len=5, ttl_s=0.1)
    await _until_gone(pair.one, pair.name("k"))
    await pair.one.sweep()
    async with await psycopg.AsyncConnection.connect(engine_url[1]) as conn:
        for table, column in (("keys", "key"), ("logs", "log"), ("log_entries", "log")):
            query = sql.SQL("SELECT count(*) FROM {} WHERE {} LIKE %s").format(
                sql.Identifier(f"callagent_shared_{table}"), sql.Identifier(column)
            )
            cursor = await conn.execute(query, (f"callagent:test:{pair.prefix}:%",))
            assert await cursor.fetchone() == (0,)


async def _until_delivered(state: SharedState, subscription: Subscription, channel: str) -> str:
    """Publish until ``subscription`` receives (it resubscribes after a reconnect)."""
    received: asyncio.Queue[str] = asyncio.Queue()

    async def consume() -> None:
        async for message in subscription:
            await received.put(message)

    consumer = asyncio.create_task(consume())

    async def attempts() -> str:
        while True:
            with contextlib.suppress(SharedStateError):
                await state.publish(channel, "again")
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(received.get(), 0.2)

    try:
        return await asyncio.wait_for(attempts(), PATIENCE_S)
    finally:
        consumer.cancel()


async def _until_works(operation: Callable[[], Awaitable[T]]) -> T:
    """Retry ``operation`` through retryable errors (as a caller does after a reconnect)."""

    async def attempts() -> T:
        while True:
            try:
                return await operation()
            except SharedStateError as e:
                assert e.retryable
                await asyncio.sleep(0.1)

    return await asyncio.wait_for(attempts(), PATIENCE_S)


async def test_a_restarted_redis_is_used_again_and_subscriptions_resume() -> None:
    with killable_redis() as server:
        state, other = open_shared_state(server.url), open_shared_state(server.url)
        subscription = await state.subscribe("callagent:test:ch")
        await other.put("callagent:test:k", "v", ttl_s=60)
        server.kill()
        with pytest.raises(SharedStateError):
            await asyncio.wait_for(other.get("callagent:test:k"), PATIENCE_S)
        server.restart()
        assert await _until_works(lambda: other.put("callagent:test:k", "w", ttl_s=60))
        assert await state.get("callagent:test:k") == "w"
        assert await _until_delivered(other, subscription, "callagent:test:ch") == "again"
        await state.aclose()
        await other.aclose()


async def test_postgresql_connections_cut_are_reopened(
    pair: Pair, engine_url: tuple[str, str]
) -> None:
    if pair.engine != "postgresql":
        pytest.skip("the PostgreSQL engine's connections")
    import psycopg

    from integrations.shared_state.postgres import APPLICATION_NAME

    channel, key = pair.name("ch"), pair.name("k")
    subscription = await pair.other.subscribe(channel)
    await pair.one.put(key, "v", ttl_s=60)
    async with await psycopg.AsyncConnection.connect(engine_url[1], autocommit=True) as admin:
        cursor = await admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (APPLICATION_NAME,),
        )
        assert (await cursor.fetchone() or (0,))[0] >= 2  # commands and listening
    assert await _until_works(lambda: pair.one.get(key)) == "v"
    assert await _until_delivered(pair.one, subscription, channel) == "again"
    await subscription.aclose()


@pytest.mark.parametrize("scheme", ["redis", "postgresql"])
async def test_a_server_that_never_answers_gives_a_retryable_error_not_a_hang(
    scheme: str,
) -> None:
    import socket

    from integrations.shared_state.postgres import PostgresSharedState
    from integrations.shared_state.redis import RedisSharedState

    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        url = f"{scheme}://127.0.0.1:{silent.getsockname()[1]}/0"
        state = (RedisSharedState if scheme == "redis" else PostgresSharedState)(url, timeout_s=1)
        with pytest.raises(SharedStateError) as raised:
            await asyncio.wait_for(state.put("callagent:test:k", "v", ttl_s=60), PATIENCE_S * 2)
        assert raised.value.retryable is True
        await state.aclose()
