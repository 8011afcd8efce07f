"""The campaign store: creation, claims (once, in the window, never on the DNC list), retries."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from integrations.outbound.campaign_types import CampaignError, CampaignStateError
from integrations.outbound.campaigns import CampaignStore
from integrations.outbound.dispositions import Disposition
from integrations.outbound.retries import RetryPolicy
from integrations.outbound.rules import CampaignRules, RulesError
from integrations.storage.records import utcnow
from tests.support.records import open_store

NY = "America/New_York"
WED_10AM_NY = datetime(2026, 1, 14, 15, 0)  # naive UTC, as the tables store time
WED_8PM_NY = datetime(2026, 1, 15, 1, 0)
THU_9AM_NY = datetime(2026, 1, 15, 14, 0)
CSV = "phone,first_name\n+12125550101,Maria\n+12125550102,Omar\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def campaigns(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CampaignStore]:
    with open_store(request.param, tmp_path) as store:
        yield CampaignStore(store.engine)


def rules(**over: object) -> CampaignRules:
    values: dict[str, object] = {"agent": "appointment_reminders", "timezone": NY, **over}
    return CampaignRules(**values)  # type: ignore[arg-type]


def create(store: CampaignStore, text: str = CSV, **over: object) -> str:
    info, problems = store.create_from_csv(
        "reminders", rules(**over), text, required=("first_name",), now=WED_10AM_NY
    )
    assert problems == []
    return info.id


def test_create_shows_progress_and_contacts(campaigns: CampaignStore) -> None:
    info, problems = campaigns.create_from_csv(
        "reminders", rules(), CSV + "nope,Ann\n", required=("first_name",), now=WED_10AM_NY
    )
    assert [(p.line, p.reason) for p in problems] == [(4, "invalid phone number")]
    assert info.state == "running" and info.progress.total == 2
    assert info.progress.count("pending") == 2
    contacts = campaigns.contacts(info.id)
    assert [(c.line, c.phone, c.timezone) for c in contacts] == [
        (2, "+12125550101", NY),
        (3, "+12125550102", NY),
    ]
    assert campaigns.campaigns()[0].id == info.id
    assert campaigns.campaign(info.id).rules == rules()
    with pytest.raises(CampaignError, match="no contact"):
        campaigns.create_from_csv("x", rules(), "phone\nnope\n", now=WED_10AM_NY)


def test_claim_in_the_window_writes_attempt_one(campaigns: CampaignStore) -> None:
    campaign_id = create(campaigns)
    due = campaigns.due_contacts(WED_10AM_NY)
    assert [d.campaign_id for d in due] == [campaign_id, campaign_id]
    attempt = campaigns.claim_attempt(due[0].contact_id, WED_10AM_NY)
    assert attempt is not None and attempt.number == 1 and attempt.to == "+12125550101"
    assert attempt.variables == {"first_name": "Maria"}
    assert attempt.agent == "appointment_reminders"
    assert campaigns.claim_attempt(due[0].contact_id, WED_10AM_NY) is None  # dialling already
    assert campaigns.active_attempts(campaign_id) == 1
    assert [d.contact_id for d in campaigns.due_contacts(WED_10AM_NY)] == [due[1].contact_id]


def test_outside_the_window_nothing_is_claimed_and_next_at_moves(campaigns: CampaignStore) -> None:
    campaign_id = create(campaigns)
    contact = campaigns.due_contacts(WED_8PM_NY)[0]
    assert campaigns.claim_attempt(contact.contact_id, WED_8PM_NY) is None
    moved = campaigns.contacts(campaign_id)[0]
    assert moved.state == "pending" and moved.attempts == 0
    assert moved.next_at == THU_9AM_NY
    assert campaigns.outbound.attempts(campaign_id=campaign_id) == []
    assert campaigns.claim_attempt(contact.contact_id, WED_8PM_NY) is None  # not due yet
    assert campaigns.claim_attempt(contact.contact_id, THU_9AM_NY) is not None


def test_a_number_on_the_do_not_call_list_is_never_dialled(campaigns: CampaignStore) -> None:
    campaign_id = create(campaigns)
    campaigns.outbound.dnc_add("+12125550101", "api")  # after the import
    first = campaigns.due_contacts(WED_10AM_NY)[0]
    assert campaigns.claim_attempt(first.contact_id, WED_10AM_NY) is None
    contact = campaigns.contacts(campaign_id)[0]
    assert (contact.state, contact.disposition, contact.attempts) == ("done", "do-not-call", 0)
    assert campaigns.outbound.attempts(campaign_id=campaign_id) == []


def test_two_claimers_of_one_contact_make_exactly_one_attempt(campaigns: CampaignStore) -> None:
    campaign_id = create(campaigns)
    contact_id = campaigns.due_contacts(WED_10AM_NY)[0].contact_id
    for round_ in range(4):
        results: list[object] = []
        start = threading.Barrier(2)

        def claim(start: threading.Barrier = start, results: list[object] = results) -> None:
            start.wait()
            results.append(campaigns.claim_attempt(contact_id, WED_10AM_NY))

        threads = [threading.Thread(target=claim) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        won = [r for r in results if r is not None]
        assert len(won) == 1
        attempt = campaigns.outbound.attempt(won[0].id)  # type: ignore[attr-defined]
        assert attempt is not None
        campaigns.outbound.finish(attempt.id, Disposition.BUSY)
        result = campaigns.attempt_finished(attempt, WED_10AM_NY - timedelta(minutes=10), False)
        assert result.state == ("pending" if round_ < 3 else "done")
    numbers = sorted(a.number for a in campaigns.outbound.attempts(contact_id=contact_id))
    assert numbers == [1, 2, 3, 4]  # busy: three retries, then the fourth is final
    assert campaigns.contacts(campaign_id)[0].disposition == "busy"
    assert campaigns.contacts(campaign_id)[0].state == "done"


def test_retries_follow_the_rules_and_the_window(campaigns: CampaignStore) -> None:
    campaign_id = create(campaigns, retries=RetryPolicy.parse(["no-answer=1x30m"]))
    contact_id = campaigns.due_contacts(WED_10AM_NY)[0].contact_id
    late = datetime(2026, 1, 14, 23, 45)  # 18:45 in New York: +30 min is after closing
    first = campaigns.claim_attempt(contact_id, late - timedelta(minutes=5))
    assert first is not None
    campaigns.outbound.finish(first.id, Disposition.NO_ANSWER)
    result = campaigns.attempt_finished(first, late, retryable=False)
    assert (result.state, result.next_at, result.final) == ("pending", THU_9AM_NY, False)
    again = campaigns.attempt_finished(first, late, retryable=False)
    assert again.changed is False and again.next_at == THU_9AM_NY  # applied once
    second = campaigns.claim_attempt(contact_id, THU_9AM_NY)
    assert second is not None and second.number == 2
    campaigns.outbound.record_outcome(second.id, Disposition.CONFIRMED)
    campaigns.outbound.finish(second.id, Disposition.COMPLETED)
    done = campaigns.attempt_finished(second, THU_9AM_NY, retryable=False)
    assert (done.state, done.disposition, done.final) == ("done", "confirmed", True)
    progress = campaigns.campaign(campaign_id).progress
    assert progress.dispositions == {"confirmed": 1} and progress.count("pending") == 1


def test_failed_is_retried_only_when_retryable(campaigns: CampaignStore) -> None:
    create(campaigns)
    contacts = [d.contact_id for d in campaigns.due_contacts(WED_10AM_NY)]
    cases = ((contacts[0], False, "done"), (contacts[1], True, "pending"))
    for contact_id, retryable, state in cases:
        attempt = campaigns.claim_attempt(contact_id, WED_10AM_NY)
        assert attempt is not None
        campaigns.outbound.finish(attempt.id, Disposition.FAILED, error_code=21211)
        assert campaigns.attempt_finished(attempt, WED_10AM_NY, retryable).state == state


def test_stale_dials_are_finished_and_the_contact_gets_its_next_attempt(
    campaigns: CampaignStore,
) -> None:
    campaign_id = create(campaigns)
    contact_id = campaigns.due_contacts(WED_10AM_NY)[0].contact_id
    lost = campaigns.claim_attempt(contact_id, WED_10AM_NY)
    assert lost is not None and campaigns.outbound.claim_dial(lost.id)  # then the dialler died
    later = WED_10AM_NY + timedelta(minutes=5)
    results = campaigns.reconcile_stale(WED_10AM_NY + timedelta(minutes=2), later)
    assert [(r.contact_id, r.state) for r in results] == [(contact_id, "pending")]
    ended = campaigns.outbound.attempt(lost.id)
    assert ended is not None and ended.ended and ended.error == "dialler lost"
    assert campaigns.outbound.claim_dial(lost.id) is False  # that attempt is never dialled
    assert campaigns.reconcile_stale(later, later) == []  # once
    retry_at = results[0].next_at
    assert retry_at is not None
    nxt = campaigns.claim_attempt(contact_id, retry_at)
    assert nxt is not None and nxt.number == 2
    assert campaigns.active_attempts(campaign_id) == 1


def test_an_ended_attempt_whose_end_was_never_applied_is_applied_by_the_reconcile(
    campaigns: CampaignStore,
) -> None:
    campaign_id = create(campaigns)
    first, second = (d.contact_id for d in campaigns.due_contacts(WED_10AM_NY))
    answered = campaigns.claim_attempt(first, WED_10AM_NY)
    refused = campaigns.claim_attempt(second, WED_10AM_NY)
    assert answered is not None and refused is not None
    for attempt in (answered, refused):
        assert campaigns.outbound.claim_dial(attempt.id)
        campaigns.outbound.mark_dialed(attempt.id, f"CA{attempt.id}")
    campaigns.outbound.finish(answered.id, Disposition.NO_ANSWER)
    campaigns.outbound.finish(refused.id, Disposition.FAILED, error_code=21217)
    # ...and the worker that would apply them died: both contacts still wait in "dialing"
    assert campaigns.reconcile_stale(datetime(2000, 1, 1), WED_10AM_NY) == []  # not stale yet
    later = utcnow() + timedelta(minutes=5)
    results = campaigns.reconcile_stale(later, WED_10AM_NY)
    assert sorted((r.contact_id, r.attempt_id, r.state) for r in results) == sorted(
        [(first, answered.id, "pending"), (second, refused.id, "done")]
    )  # no-answer retried; an error with a provider code taken as final
    assert campaigns.reconcile_stale(later, WED_10AM_NY) == []  # once
    assert campaigns.active_attempts(campaign_id) == 0


def test_the_queue_reads_a_campaign_in_one_cheap_row(campaigns: CampaignStore) -> None:
    campaign_id = create(campaigns, max_concurrent=3, calls_per_second=2.5)
    seen = campaigns.dialing_campaign(campaign_id)
    assert seen is not None
    assert (seen.state, seen.max_concurrent, seen.calls_per_second) == ("running", 3, 2.5)
    assert seen.result_webhook_url is None
    campaigns.pause(campaign_id)
    assert campaigns.dialing_campaign(campaign_id).state == "paused"  # type: ignore[union-attr]
    assert campaigns.dialing_campaign("cp_nope") is None
    other = create(campaigns)
    due = campaigns.due_contacts(WED_10AM_NY, campaign_id=other)
    assert {d.campaign_id for d in due} == {other}


def test_pause_resume_cancel(campaigns: CampaignStore) -> None:
    campaign_id = create(campaigns)
    contact_ids = [d.contact_id for d in campaigns.due_contacts(WED_10AM_NY)]
    in_flight = campaigns.claim_attempt(contact_ids[0], WED_10AM_NY)
    assert in_flight is not None
    assert campaigns.pause(campaign_id).state == "paused"
    assert campaigns.due_contacts(WED_10AM_NY) == []
    assert campaigns.claim_attempt(contact_ids[1], WED_10AM_NY) is None
    assert campaigns.resume(campaign_id).state == "running"
    assert len(campaigns.due_contacts(WED_10AM_NY)) == 1
    cancelled = campaigns.cancel(campaign_id)
    assert cancelled.state == "cancelled"
    assert cancelled.progress.count("cancelled") == 1 and cancelled.progress.count("dialing") == 1
    # the call in progress finishes, and is not retried
    campaigns.outbound.finish(in_flight.id, Disposition.NO_ANSWER)
    result = campaigns.attempt_finished(in_flight, WED_10AM_NY, retryable=False)
    assert (result.state, result.disposition) == ("cancelled", "no-answer")
    with pytest.raises(CampaignStateError, match="cannot be resumed"):
        campaigns.resume(campaign_id)


def test_campaign_completes_when_every_contact_is_done(campaigns: CampaignStore) -> None:
    campaign_id = create(campaigns, text="phone,first_name\n+12125550101,Maria\n")
    contact_id = campaigns.due_contacts(WED_10AM_NY)[0].contact_id
    attempt = campaigns.claim_attempt(contact_id, WED_10AM_NY)
    assert attempt is not None
    campaigns.outbound.finish(attempt.id, Disposition.OPTED_OUT)
    campaigns.attempt_finished(attempt, WED_10AM_NY, retryable=False)
    assert campaigns.campaign(campaign_id).state == "completed"


def test_bad_rules_name_the_rule() -> None:
    with pytest.raises(RulesError) as bad:
        CampaignRules.from_json("a", {"max_concurrent": 0})
    assert bad.value.field == "max_concurrent"
    with pytest.raises(RulesError) as bad:
        CampaignRules.from_json("a", {"windows": {"mon": ["9-5"]}})
    assert bad.value.field == "windows"
    with pytest.raises(RulesError) as bad:
        CampaignRules.from_json("a", {"holidays": "ZZ"})
    assert bad.value.field == "holidays"
    with pytest.raises(RulesError) as bad:
        CampaignRules.from_json("a", {"colour": "red"})
    assert bad.value.field == "colour"
