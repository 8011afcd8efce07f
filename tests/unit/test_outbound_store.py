from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from integrations.outbound.dispositions import Disposition
from integrations.outbound.store import (
    DuplicateAttemptError,
    OutboundStore,
    OutboundStoreError,
)
from integrations.storage import CallStore
from integrations.storage.records import utcnow
from tests.support.records import open_store


@pytest.fixture(params=["sqlite", "postgresql"])
def outbound(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OutboundStore]:
    with open_store(request.param, tmp_path) as store:
        yield OutboundStore(store.engine)


def test_attempt_is_written_before_the_dial_and_claimed_once(outbound: OutboundStore) -> None:
    attempt = outbound.new_attempt(
        agent="appointment_reminders", to="(555) 555-0123", variables={"first_name": "Maria"}
    )
    assert attempt.to == "+15555550123"
    assert attempt.state == "created"
    assert outbound.claim_dial(attempt.id) is True
    assert outbound.claim_dial(attempt.id) is False  # a second dialler never places it
    outbound.mark_dialed(attempt.id, "CA" + "0" * 32)
    found = outbound.attempt_by_provider_id("CA" + "0" * 32)
    assert found is not None and found.id == attempt.id and found.variables["first_name"] == "Maria"


def test_outcome_decided_in_the_call_wins_over_the_status_callback(
    outbound: OutboundStore,
) -> None:
    attempt = outbound.new_attempt(agent="a", to="+15555550123")
    outbound.mark_status(attempt.id, "in-progress", answered_by="human")
    outbound.record_outcome(attempt.id, Disposition.CONFIRMED)
    ended = outbound.finish(attempt.id, Disposition.COMPLETED)
    assert ended is not None and ended.disposition == "confirmed" and ended.ended
    again = outbound.finish(attempt.id, Disposition.FAILED, error_code=31000)
    assert again is not None and again.disposition == "confirmed" and again.error_code is None
    with pytest.raises(ValueError):
        outbound.record_outcome(attempt.id, "maybe")


def test_no_attempt_number_twice_for_a_contact(call_store: CallStore) -> None:
    outbound = OutboundStore(call_store.engine)
    with call_store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO campaigns (id, name, agent, state, rules, created_at, updated_at) "
            "VALUES ('cp1', 'x', 'a', 'running', '{}', '2026-01-01', '2026-01-01')"
        )
        conn.exec_driver_sql(
            "INSERT INTO campaign_contacts (id, campaign_id, phone, timezone, variables, state, "
            "attempts, updated_at) VALUES ('ct1', 'cp1', '+15555550123', 'UTC', '{}', "
            "'pending', 0, '2026-01-01')"
        )
    outbound.new_attempt(agent="a", to="+15555550123", campaign_id="cp1", contact_id="ct1")
    with pytest.raises(DuplicateAttemptError):
        outbound.new_attempt(agent="a", to="+15555550123", campaign_id="cp1", contact_id="ct1")
    second = outbound.new_attempt(
        agent="a", to="+15555550123", campaign_id="cp1", contact_id="ct1", number=2
    )
    assert [a.id for a in outbound.attempts(contact_id="ct1")][0] == second.id


def test_stale_dials_are_those_never_named_by_the_provider(outbound: OutboundStore) -> None:
    lost = outbound.new_attempt(agent="a", to="+15555550123")
    outbound.claim_dial(lost.id)
    placed = outbound.new_attempt(agent="a", to="+15555550124")
    outbound.claim_dial(placed.id)
    outbound.mark_dialed(placed.id, "CA1")
    stale = outbound.stale_dials(utcnow() + timedelta(seconds=1))
    assert [a.id for a in stale] == [lost.id]


def test_do_not_call_list(outbound: OutboundStore) -> None:
    assert outbound.dnc_add("+1 555 555 0123", "api") is True
    assert outbound.dnc_add("5555550123", "spoken") is False  # same number
    assert outbound.dnc_contains("(555) 555-0123")
    assert not outbound.dnc_contains("not a number")
    added, bad = outbound.dnc_add_many(["+15555550199", "nope", "+15555550198"], "import")
    assert (added, bad) == (2, [1])
    assert outbound.dnc_count() == 3
    assert outbound.dnc_remove("+15555550123") is True
    assert not outbound.dnc_contains("+15555550123")
    with pytest.raises(OutboundStoreError, match="source"):
        outbound.dnc_add("+15555550123", "rumour")
    with pytest.raises(OutboundStoreError, match="E.164"):
        outbound.dnc_add("hello", "api")


async def test_an_attempt_ended_at_once_on_two_servers_is_told_once(
    outbound: OutboundStore,
) -> None:
    import asyncio

    from bot.outbound.attempts import Attempts
    from bot.outbound.listeners import AttemptListeners
    from integrations.outbound.store import Attempt

    told: list[str] = []

    class Told:
        async def attempt_ended(self, attempt: Attempt) -> None:
            told.append(attempt.id)

    def server() -> Attempts:  # each server process has its own Attempts and listeners
        listeners = AttemptListeners()
        listeners.add(Told())
        return Attempts(OutboundStore(outbound.engine), listeners)

    a, b = server(), server()
    for _ in range(5):
        attempt = outbound.new_attempt(agent="a", to="+15555550123")
        ends = await asyncio.gather(
            a.finish(attempt.id, Disposition.COMPLETED), b.finish(attempt.id, Disposition.BUSY)
        )
        assert all(e is not None and e.ended for e in ends)
        assert told.count(attempt.id) == 1
        assert not outbound.end(attempt.id, Disposition.FAILED)  # already ended
