"""The one retry policy: what is retried, how often, and how long it waits."""

import httpx
import pytest
from loguru import logger
from tenacity import RetryCallState

from integrations.retry import RetryPolicy, is_transient_error

FAST = RetryPolicy(attempts=3, backoff_s=0.0)


def answers(*statuses: int, retry_after: str | None = None):
    """An attempt function answering ``statuses`` in turn; records the attempt numbers."""
    seen: list[int] = []

    async def attempt(number: int) -> httpx.Response:
        seen.append(number)
        headers = {"Retry-After": retry_after} if retry_after else {}
        return httpx.Response(statuses[min(number, len(statuses)) - 1], headers=headers)

    return attempt, seen


class SdkError(Exception):
    """An SDK error carrying the HTTP status (like HubSpot's ApiException)."""

    def __init__(self, status: int):
        super().__init__(f"HTTP {status}")
        self.status = status


async def test_server_errors_and_rate_limits_are_retried_until_an_answer():
    attempt, seen = answers(503, 429, 200)
    response = await FAST.call(attempt, what="test")
    assert response.status_code == 200 and seen == [1, 2, 3]


async def test_client_errors_are_final():
    for status in (400, 401, 404, 408, 409):
        attempt, seen = answers(status, 200)
        response = await FAST.call(attempt, what="test")
        assert response.status_code == status and seen == [1]


async def test_out_of_attempts_gives_the_last_answer():
    attempt, seen = answers(502, 503, 504, 200)
    response = await FAST.call(attempt, what="test")
    assert response.status_code == 504 and seen == [1, 2, 3]


async def test_timeouts_and_connection_errors_are_retried_then_raised():
    seen: list[int] = []

    async def attempt(number: int) -> httpx.Response:
        seen.append(number)
        if number == 1:
            raise httpx.ConnectError("refused")
        raise httpx.ReadTimeout("slow")

    with pytest.raises(httpx.ReadTimeout):
        await FAST.call(attempt, what="test")
    assert seen == [1, 2, 3]


async def test_sdk_errors_retry_on_their_status_only():
    seen: list[int] = []

    async def attempt(number: int) -> str:
        seen.append(number)
        raise SdkError(503 if number == 1 else 404)

    with pytest.raises(SdkError, match="HTTP 404"):
        await FAST.call(attempt, what="test")
    assert seen == [1, 2]
    assert not is_transient_error(ValueError("a bug is not retried"))


async def test_a_single_attempt_policy_does_not_retry():
    attempt, seen = answers(503, 200)
    response = await RetryPolicy(attempts=1, backoff_s=0.0).call(attempt, what="test")
    assert response.status_code == 503 and seen == [1]


def waited_after(policy: RetryPolicy, response: httpx.Response) -> float:
    state = RetryCallState(None, None, (), {})  # pyright: ignore[reportArgumentType]
    state.set_result(response)
    return policy.wait_s(state)


def test_waits_back_off_with_jitter_within_the_cap():
    policy = RetryPolicy(backoff_s=0.1, max_backoff_s=0.3)
    first = waited_after(policy, httpx.Response(503))
    assert 0.1 <= first <= 0.15
    state = RetryCallState(None, None, (), {})  # pyright: ignore[reportArgumentType]
    state.attempt_number = 3
    state.set_result(httpx.Response(503))
    assert policy.wait_s(state) == 0.3  # 0.4 s and more, capped


def test_retry_after_is_honoured_up_to_the_cap_when_asked():
    honouring = RetryPolicy(backoff_s=0.01, max_backoff_s=2.0, honour_retry_after=True)
    assert waited_after(honouring, httpx.Response(429, headers={"Retry-After": "1.5"})) == 1.5
    assert waited_after(honouring, httpx.Response(503, headers={"Retry-After": "30"})) == 2.0
    ignoring = RetryPolicy(backoff_s=0.01, max_backoff_s=2.0)
    assert waited_after(ignoring, httpx.Response(429, headers={"Retry-After": "1.5"})) < 0.1


async def test_retries_are_logged_without_request_data():
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")
    try:
        attempt, _ = answers(503, 200)
        await FAST.call(attempt, what="screen pop abc")
    finally:
        logger.remove(sink)
    assert len(lines) == 1 and lines[0].startswith("screen pop abc: attempt 1 failed (HTTP 503)")
