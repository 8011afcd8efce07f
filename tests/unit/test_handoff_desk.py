"""Hand-off tickets in the shared state: registered on one process, read and updated on another."""

from __future__ import annotations

from bot.call.handoff_desk import HandoffDesk, HandoffTicket
from integrations.shared_state.memory import MemorySharedState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_ticket_registered_on_one_desk_is_read_and_updated_on_another():
    shared = MemorySharedState()
    owner, other = HandoffDesk(shared), HandoffDesk(shared)
    token = await owner.register(
        HandoffTicket(call_id="c1", trigger="explicit_request", whisper="hi", customer_id="cus_1")
    )
    found = await other.get(token)
    assert found is not None and found.whisper == "hi" and found.customer_id == "cus_1"
    found.dial_status, found.callback_requested = "no-answer", True
    await other.update(token, found)
    again = await owner.get(token)
    assert again is not None and again.dial_status == "no-answer" and again.callback_requested


async def test_unknown_malformed_and_expired_tokens_find_nothing():
    clock = Clock()
    desk = HandoffDesk(MemorySharedState(clock), ttl_s=60)
    token = await desk.register(HandoffTicket(call_id="c1", trigger="t", whisper="w"))
    assert await desk.get("") is None and await desk.get("x" * 500) is None
    assert await desk.get("no such:token") is None
    assert await desk.get(token) is not None
    clock.now += 61
    assert await desk.get(token) is None
