from datetime import UTC, datetime, timedelta

import pytest

from bot.call.crm import make_crm
from bot.settings import Settings, SettingsError
from integrations.crm.base import CallOutcome, CRMError
from integrations.crm.hubspot_crm import HubSpotCRM
from tests.fakes.hubspot import FakeHubSpot

TOKEN = "pat-na1-test"


def iso(at):
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seed(hub: FakeHubSpot) -> tuple[str, str]:
    contact = hub.add(
        "contacts",
        {
            "firstname": "Maria",
            "lastname": "Garcia",
            "phone": "+15555550123",
            "email": "maria@example.com",
            "callagent_pin": "4729",
            "date_of_birth": "1985-03-04",
            "hs_lead_status": "OPEN",
        },
    )
    hub.add("contacts", {"firstname": "Other", "phone": "+15555550999"})
    now = datetime.now(UTC)
    meeting = hub.add(
        "meetings",
        {"hs_meeting_title": "cleaning", "hs_meeting_start_time": iso(now + timedelta(days=3))},
        (contact,),
    )
    hub.add(
        "meetings",
        {"hs_meeting_title": "old visit", "hs_meeting_start_time": iso(now - timedelta(days=30))},
        (contact,),
    )
    hub.add(
        "calls",
        {
            "hs_call_title": "Booked a cleaning",
            "hs_timestamp": iso(now - timedelta(days=4)),
            "hs_call_disposition": "connected",
        },
        (contact,),
    )
    hub.add(
        "tickets",
        {
            "subject": "Billing question",
            "hs_pipeline_stage": "1",
            "createdate": iso(now - timedelta(days=2)),
        },
        (contact,),
    )
    hub.add("tickets", {"subject": "Closed one", "hs_pipeline_stage": "4"}, (contact,))
    hub.add(
        "tasks",
        {
            "hs_task_subject": "Send forms",
            "hs_task_status": "NOT_STARTED",
            "hs_task_type": "TODO",
            "hs_timestamp": iso(now + timedelta(days=1)),
        },
        (contact,),
    )
    return contact, meeting


async def test_lookup_through_the_official_sdk():
    async with FakeHubSpot(TOKEN) as hub:
        contact, meeting = seed(hub)
        crm = HubSpotCRM(TOKEN, base_url=hub.base_url)
        record = await crm.lookup("(555) 555-0123")
    assert record.customer_id == contact and record.first_name == "Maria"
    assert record.source == "hubspot" and record.account_status == "open"
    assert [a.id for a in record.appointments] == [meeting]
    assert record.next_appointment().kind == "cleaning"
    assert record.interactions[0].summary == "Booked a cleaning"
    assert [c.subject for c in record.open_cases] == ["Billing question"]
    assert record.pending_actions[0].note == "Send forms"
    assert record.secrets == {"pin": "4729", "date_of_birth": "1985-03-04"}
    search = hub.requests[0]
    assert search.path == "/crm/v3/objects/contacts/search"
    assert {"propertyName": "phone", "operator": "EQ", "value": "+15555550123"} in [
        f for g in search.body["filterGroups"] for f in g["filters"]
    ]


async def test_unknown_caller_and_bad_token():
    async with FakeHubSpot(TOKEN) as hub:
        seed(hub)
        assert await HubSpotCRM(TOKEN, base_url=hub.base_url).lookup("+15555550111") is None
        with pytest.raises(CRMError, match="HTTP 401"):
            await HubSpotCRM("wrong", base_url=hub.base_url).lookup("+15555550123")


async def test_retries_server_errors():
    async with FakeHubSpot(TOKEN, fail_next=1) as hub:
        contact, _ = seed(hub)
        record = await HubSpotCRM(TOKEN, base_url=hub.base_url, retries=2).lookup("+15555550123")
    assert record.customer_id == contact
    assert [r.status for r in hub.requests[:2]] == [503, 200]


async def test_retries_timeouts_but_not_client_errors():
    async with FakeHubSpot(TOKEN, stall_next=1, stall_s=1.0) as hub:
        contact, _ = seed(hub)
        crm = HubSpotCRM(TOKEN, base_url=hub.base_url, timeout_s=0.3, retries=1)
        record = await crm.lookup("+15555550123")
    assert record.customer_id == contact
    assert [r.status for r in hub.requests[:2]] == [0, 200]  # timed out, then answered
    async with FakeHubSpot(TOKEN, fail_next=1, fail_status=400) as hub:
        seed(hub)
        with pytest.raises(CRMError, match="HTTP 400"):
            await HubSpotCRM(TOKEN, base_url=hub.base_url, retries=2).lookup("+15555550123")
    assert [r.status for r in hub.requests] == [400]


async def test_write_backs():
    async with FakeHubSpot(TOKEN) as hub:
        contact, meeting = seed(hub)
        crm = HubSpotCRM(TOKEN, base_url=hub.base_url)
        await crm.log_call(contact, CallOutcome("c1", "transferred", summary="AI agent call"))
        new_time = datetime.now(UTC) + timedelta(days=9)
        await crm.move_appointment(contact, meeting, new_time)
        await crm.add_pending_action(contact, "callback", "Call back about billing")
        await crm.cancel_appointment(contact, meeting)
        calls = [c for c in hub.objects["calls"].values() if contact in c.contact_ids]
        assert any(c.properties["hs_call_title"] == "AI agent call: transferred" for c in calls)
        props = hub.objects["meetings"][meeting].properties
        assert props["hs_meeting_start_time"] == iso(new_time)
        assert props["hs_meeting_outcome"] == "CANCELED"
        assert any(t.properties["hs_task_type"] == "CALL" for t in hub.objects["tasks"].values())
        with pytest.raises(CRMError, match="HTTP 404"):
            await crm.cancel_appointment(contact, "999999")


def test_settings_choose_hubspot():
    s = Settings.load({"CALLAGENT_CRM": "hubspot", "HUBSPOT_ACCESS_TOKEN": TOKEN})
    assert isinstance(make_crm(s), HubSpotCRM)
    with pytest.raises(SettingsError, match="HUBSPOT_ACCESS_TOKEN"):
        Settings.load({"CALLAGENT_CRM": "hubspot"})
