"""A killed agent process's call, closed by a peer on another host (issue 18, item 4).

Two real servers (``callagent serve`` child processes) share one PostgreSQL and stand for
two hosts (``CALLAGENT_WORKER_HOST``), each with its own data folder: the peer cannot read
the dead process's journal, only the shared database. A call runs on host A over the real
Twilio Media Streams protocol; once its greeting turn is in the shared database (read
through host B's API) A is killed with SIGKILL. B must then close the record as failed,
"server lost", within the bound its settings give (stale limit + one sweep), keeping the
turn; while A lived, B left its call alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from integrations.storage.recovery import SERVER_LOST
from simulator.local_agent import LocalAgent
from simulator.phone import place_call
from tests.support.records import PG_SKIP, postgres_server_url

pytestmark = pytest.mark.e2e

HEARTBEAT_SECS = 0.5
STALE_SECS = 2.0
BOUND_SECS = STALE_SECS * 1.5  # last heartbeat + stale limit + one sweep (stale / 2)
SLACK_SECS = 10.0  # a busy 2-core machine: the writer thread, the HTTP poll
REPLY_TIMEOUT = 90.0
OPEN = "in_progress"  # how the API shows a call with no outcome yet


@pytest.fixture
def shared_database() -> Iterator[str]:
    url = postgres_server_url()
    if url is None:
        pytest.skip(PG_SKIP)
    from integrations.storage.scratch import scratch_postgres_database

    with scratch_postgres_database(url, "callagent_crash") as scratch:
        yield scratch


def host(name: str, database_url: str, tmp_path: Any) -> LocalAgent:
    return LocalAgent(
        mode="process",
        data_dir=tmp_path / name,  # one data folder per host: no shared journal or spool
        env={
            "DATABASE_URL": database_url,
            "CALLAGENT_WORKER_HOST": name,
            "CALLAGENT_WORKER_HEARTBEAT_SECS": str(HEARTBEAT_SECS),
            "CALLAGENT_WORKER_STALE_SECS": str(STALE_SECS),
        },
    )


async def poll(read: Any, done: Any, timeout_s: float) -> Any:
    """Read until ``done(value)`` (the last value after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await read()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.2)


async def test_a_peer_on_another_host_closes_a_killed_process_call_keeping_its_turns(
    shared_database, tmp_path
):
    a = host("host-a", shared_database, tmp_path)
    b = host("host-b", shared_database, tmp_path)
    await a.start()
    await b.start()
    try:
        headers = {"Authorization": f"Bearer {b.operator_token}"}
        async with httpx.AsyncClient(base_url=b.base_url, headers=headers) as through_b:

            async def listed() -> dict[str, Any]:
                return (await through_b.get("/api/calls")).json()

            call = await place_call(
                a.base_url,
                auth_token=a.auth_token,
                account_sid=a.account_sid,
                from_number="+15555550142",
            )
            try:
                await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT)
                found = await poll(listed, lambda v: v["total"] == 1, REPLY_TIMEOUT)
                assert found["total"] == 1, found
                call_id = found["calls"][0]["id"]

                async def record() -> dict[str, Any]:
                    return (await through_b.get(f"/api/calls/{call_id}")).json()

                # the greeting turn reaches the shared database while the call runs
                before = await poll(record, lambda r: bool(r["turns"]), REPLY_TIMEOUT)
                assert before["turns"] and before["turns"][0]["kind"] == "greeting", before
                assert before["worker_id"].startswith("host-a:"), before["worker_id"]

                # a live peer's call is left alone, however long it runs
                await asyncio.sleep(2 * STALE_SECS)
                assert (await record())["outcome"] == OPEN

                await a.kill()
                killed = time.monotonic()
            finally:
                with contextlib.suppress(Exception):
                    await call.hang_up()

            closed = await poll(record, lambda r: r["outcome"] != OPEN, BOUND_SECS + SLACK_SECS)
            took = time.monotonic() - killed
            print(f"closed by the peer {took:.1f} s after the kill (bound {BOUND_SECS:.1f} s)")
    finally:
        await a.stop()
        await b.stop()

    assert closed["outcome"] == "failed", closed["outcome"]
    assert closed["end_reason"] == SERVER_LOST
    assert took <= BOUND_SECS + SLACK_SECS, took
    assert [t["kind"] for t in closed["turns"]][: len(before["turns"])] == [
        t["kind"] for t in before["turns"]
    ]
    assert closed["turns"][0]["bot_text"] == before["turns"][0]["bot_text"]
    assert closed["ended_at"] is not None
