"""A retried Twilio call create never rings the person twice (Twilio has no idempotency key)."""

import asyncio

import pytest

from integrations.twilio_rest import TwilioCallControl, TwilioRestError
from simulator.outbound.callee import NoAnswer
from tests.fakes.twilio import FakeTwilioRest

ACCOUNT = "AC" + "1" * 32
CALLEE = "+15555550111"
OURS = "+15555550100"
URLS = ("http://127.0.0.1:9/twilio/voice", "http://127.0.0.1:9/twilio/status")


async def _create(control: TwilioCallControl) -> str:
    return await control.create_call(CALLEE, OURS, *URLS)


def _seen(rest: FakeTwilioRest) -> list[tuple[str, int]]:
    return [(r.method, r.status) for r in rest.requests]


async def test_a_create_whose_answer_was_lost_is_adopted_not_placed_again():
    async with FakeTwilioRest(ACCOUNT, "tok") as rest:
        rest.dialer.register(CALLEE, NoAnswer())
        rest.stall_next_creates(3.0)  # placed, but the answer comes after the client gave up
        control = TwilioCallControl(ACCOUNT, "tok", base_url=rest.base_url, timeout_s=0.5)
        sid = await _create(control)
        assert list(rest.dialer.calls) == [sid]
        assert _seen(rest) == [("POST", 201), ("GET", 200)]
        await rest.dialer.aclose()


async def test_a_create_refused_for_now_is_placed_on_the_retry():
    async with FakeTwilioRest(ACCOUNT, "tok") as rest:
        rest.dialer.register(CALLEE, NoAnswer())
        rest.fail_next(503)  # nothing placed: the lookup finds no call, so it is created
        control = TwilioCallControl(ACCOUNT, "tok", base_url=rest.base_url)
        sid = await _create(control)
        assert list(rest.dialer.calls) == [sid]
        assert _seen(rest) == [("POST", 503), ("GET", 200), ("POST", 201)]
        await rest.dialer.aclose()


async def test_when_the_calls_cannot_be_listed_the_create_is_not_tried_blind():
    async with FakeTwilioRest(ACCOUNT, "tok") as rest:
        rest.dialer.register(CALLEE, NoAnswer())
        rest.stall_next_creates(3.0)
        control = TwilioCallControl(ACCOUNT, "tok", base_url=rest.base_url, timeout_s=0.5)
        creating = asyncio.create_task(_create(control))
        async with asyncio.timeout(5):
            while not rest.requests:
                await asyncio.sleep(0.01)
        rest.fail_next(503, times=2)  # both lookups of the retries
        with pytest.raises(TwilioRestError) as raised:
            await creating
        assert raised.value.retryable
        assert len(rest.dialer.calls) == 1
        assert _seen(rest) == [("POST", 201), ("GET", 503), ("GET", 503)]
        await rest.dialer.aclose()
