import time

from integrations.screen_pop import ScreenPopClient, sign, verify_signature
from tests.fakes.agent_desktop import WebhookReceiver

SECRET = "desk-secret"


async def test_signed_delivery():
    async with WebhookReceiver() as desk:
        result = await ScreenPopClient(desk.url, SECRET).deliver({"summary": {"a": 1}}, "key-1")
    assert result.delivered and result.attempts == 1
    got = desk.received[0]
    assert got.headers["Idempotency-Key"] == "key-1"
    assert verify_signature(SECRET, got.body, got.headers["X-Callagent-Signature"])
    assert not verify_signature("other", got.body, got.headers["X-Callagent-Signature"])
    assert not verify_signature(SECRET, got.body + b" ", got.headers["X-Callagent-Signature"])


async def test_retries_with_the_same_idempotency_key():
    async with WebhookReceiver(statuses=[503, 500]) as desk:
        result = await ScreenPopClient(desk.url, SECRET, attempts=3, backoff_s=0.01).deliver(
            {"x": 1}, "key-2"
        )
    assert result.delivered and result.attempts == 3
    assert {r.headers["Idempotency-Key"] for r in desk.received} == {"key-2"}
    assert [r.headers["X-Callagent-Attempt"] for r in desk.received] == ["1", "2", "3"]


async def test_client_errors_are_final_and_network_errors_fail_cleanly():
    async with WebhookReceiver(statuses=[400]) as desk:
        result = await ScreenPopClient(desk.url, SECRET, backoff_s=0.01).deliver({}, "k")
    assert not result.delivered and result.attempts == 1 and result.status == 400
    result = await ScreenPopClient(
        "http://127.0.0.1:9/x", SECRET, attempts=2, backoff_s=0.01
    ).deliver({}, "k")
    assert not result.delivered and result.attempts == 2 and result.status is None


async def test_timeouts_are_retried():
    async with WebhookReceiver(delay_s=0.5) as desk:
        result = await ScreenPopClient(
            desk.url, SECRET, attempts=2, timeout_s=0.1, backoff_s=0.01
        ).deliver({}, "k")
    assert not result.delivered and result.error == "ReadTimeout"
    assert result.attempts == 2 and len(desk.received) == 2


async def test_rate_limits_are_retried():
    async with WebhookReceiver(statuses=[429]) as desk:
        result = await ScreenPopClient(desk.url, SECRET, backoff_s=0.01).deliver({}, "k")
    assert result.delivered and result.attempts == 2


def test_stale_signatures_are_rejected():
    old = int(time.time()) - 3600
    assert not verify_signature(SECRET, b"{}", sign(SECRET, b"{}", old))
