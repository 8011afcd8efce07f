import json

import pytest

from bot.call.crm import make_crm
from bot.settings import Settings, SettingsError
from integrations.crm.base import CallOutcome, CRMError
from integrations.crm.rest_crm import RestCRM, parse_field_map
from tests.fakes.crm import FakeRestCRMServer

CUSTOMER = {
    "data": {
        "customer": {
            "uid": "X-77",
            "firstName": "Maria",
            "lastName": "Garcia",
            "phone": "+15555550123",
            "status": "VIP",
            "upcoming": [{"ref": "A1", "start": "2031-05-06T15:00:00", "type": "cleaning"}],
            "tickets": [{"id": "T1", "subject": "Billing question", "status": "open"}],
        }
    }
}
FIELD_MAP = (
    "record=data.customer, customer_id=uid, first_name=firstName, last_name=lastName, "
    "account_status=status, appointments=upcoming, appointments[].id=ref, "
    "appointments[].starts_at=start, appointments[].kind=type, open_cases=tickets"
)


def crm_for(server, **kw):
    return RestCRM(
        f"{server.origin}/customers?phone={{phone}}",
        write_url=f"{server.origin}/customers/{{customer_id}}/events",
        headers={"Authorization": "Bearer s3cret"},
        field_map=parse_field_map(FIELD_MAP),
        backoff_s=0.01,
        **kw,
    )


async def test_lookup_maps_fields_and_sends_auth():
    async with FakeRestCRMServer(CUSTOMER) as server:
        crm = crm_for(server)
        record = await crm.lookup("(555) 555-0123")
        await crm.close()
    assert record.customer_id == "X-77" and record.first_name == "Maria"
    assert record.account_status == "VIP"
    assert record.appointments[0].id == "A1" and record.appointments[0].kind == "cleaning"
    assert record.open_cases[0].subject == "Billing question"
    method, url, headers, _ = server.requests[0]
    assert "phone=%2B15555550123" in url and headers["Authorization"] == "Bearer s3cret"


async def test_not_found_is_none():
    async with FakeRestCRMServer(CUSTOMER) as server:
        crm = crm_for(server)
        assert await crm.lookup("+15555550999") is None
        await crm.close()


async def test_retries_then_succeeds():
    async with FakeRestCRMServer(CUSTOMER, fail_first=2) as server:
        crm = crm_for(server, retries=2)
        record = await crm.lookup("+15555550123")
        await crm.close()
    assert record is not None and len(server.requests) == 3


async def test_gives_up_after_retries_and_on_timeout():
    async with FakeRestCRMServer(CUSTOMER, fail_first=5) as server:
        crm = crm_for(server, retries=1)
        with pytest.raises(CRMError, match="HTTP 503"):
            await crm.lookup("+15555550123")
        await crm.close()
    async with FakeRestCRMServer(CUSTOMER, delay_s=1.0) as server:
        crm = crm_for(server, retries=1, timeout_s=0.1)
        with pytest.raises(CRMError, match="after 2 attempts"):
            await crm.lookup("+15555550123")
        await crm.close()


async def test_timeouts_are_retried_and_client_errors_are_final():
    async with FakeRestCRMServer(CUSTOMER, delay_s=1.0) as server:
        crm = crm_for(server, retries=2, timeout_s=0.1)
        with pytest.raises(CRMError, match="after 3 attempts: ReadTimeout"):
            await crm.lookup("+15555550123")
        await crm.close()
    assert len(server.requests) == 3
    async with FakeRestCRMServer(CUSTOMER, fail_first=1, fail_status=400) as server:
        crm = crm_for(server, retries=2)
        with pytest.raises(CRMError, match="HTTP 400"):
            await crm.lookup("+15555550123")
        await crm.close()
    assert len(server.requests) == 1


async def test_write_back_is_idempotent_across_retries():
    async with FakeRestCRMServer(CUSTOMER, fail_first=1) as server:
        crm = crm_for(server, retries=2)
        await crm.log_call("X-77", CallOutcome("call1", "transferred", ("talk_to_human",)))
        await crm.close()
    posts = [r for r in server.requests if r[0] == "POST"]
    assert len(posts) == 2
    assert posts[0][2]["Idempotency-Key"] == posts[1][2]["Idempotency-Key"]
    body = json.loads(posts[1][3])
    assert body["action"] == "log_call" and body["outcome"] == "transferred"
    assert posts[0][1] == "/customers/X-77/events"


def test_settings_build_the_rest_crm_and_name_bad_field_maps():
    env = {
        "CALLAGENT_CRM": "rest",
        "CRM_REST_LOOKUP_URL": "http://x/c?phone={phone}",
        "CRM_REST_AUTH_HEADER": "X-Api-Key: abc",
        "CRM_REST_FIELD_MAP": FIELD_MAP,
    }
    assert isinstance(make_crm(Settings.load(env)), RestCRM)
    with pytest.raises(SettingsError, match="CRM_REST_FIELD_MAP"):
        make_crm(Settings.load({**env, "CRM_REST_FIELD_MAP": "shoe_size=x"}))
    with pytest.raises(SettingsError, match="CRM_REST_LOOKUP_URL"):
        Settings.load({"CALLAGENT_CRM": "rest"})
