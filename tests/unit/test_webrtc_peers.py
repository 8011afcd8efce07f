"""A trickle-ICE request that reached another process is handed to the process holding the peer.

Two signalling routers (``transports.webrtc.create_webrtc_router``) with their
:class:`~bot.web.webrtc_peers.InboxPeers` on one shared state and distinct process ids
stand for two processes behind a load balancer; the offer is answered by A, its ICE
candidates arrive at B.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from bot.web.webrtc_peers import InboxPeers
from integrations.shared_state.calls import CallInbox, CallOwners
from integrations.shared_state.memory import MemorySharedState
from tests.support.webrtc import browser_offer_sdp
from transports.webrtc import WebRTCRouter, create_webrtc_router

CANDIDATE = {
    "candidate": "candidate:1 1 udp 2122260223 192.0.2.10 54321 typ host",
    "sdp_mid": "0",
    "sdp_mline_index": 0,
}


class Process:
    def __init__(self, shared: MemorySharedState, process_id: str) -> None:
        async def on_connection(*_args: object) -> None:
            return None

        self.inbox = CallInbox(CallOwners(shared, process_id))
        peers = InboxPeers(self.inbox)
        self.router: WebRTCRouter = create_webrtc_router(on_connection, peers=peers)
        peers.serve(self.router)
        app = FastAPI()
        app.include_router(self.router)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agent"
        )

    async def close(self) -> None:
        await self.client.aclose()
        await self.router.close()
        await self.inbox.aclose()


@pytest.fixture
async def a_and_b() -> AsyncIterator[tuple[Process, Process]]:
    shared = MemorySharedState()
    a, b = Process(shared, "hostA:1:aa"), Process(shared, "hostB:2:bb")
    await a.inbox.start()
    await b.inbox.start()
    yield a, b
    await a.close()
    await b.close()


async def test_candidates_sent_to_b_reach_the_peer_a_answered(a_and_b) -> None:
    a, b = a_and_b
    answered = await a.client.post(
        "/api/offer", json={"sdp": await browser_offer_sdp(), "type": "offer"}
    )
    assert answered.status_code == 200, answered.text
    pc_id = answered.json()["pc_id"]
    assert (await b.inbox.owners.owner_of(pc_id)).process_id == "hostA:1:aa"  # type: ignore[union-attr]

    added: list[str] = []
    peer = a.router.handler._pcs_map[pc_id]  # noqa: SLF001 - what A's peer was handed
    original = peer.add_ice_candidate

    async def spy(candidate):  # type: ignore[no-untyped-def]
        added.append(candidate.ip if candidate is not None else "end")
        await original(candidate)

    peer.add_ice_candidate = spy  # type: ignore[method-assign]
    patched = await b.client.patch("/api/offer", json={"pc_id": pc_id, "candidates": [CANDIDATE]})
    assert patched.status_code == 200, patched.text
    assert added == ["192.0.2.10"]

    unknown = await b.client.patch(
        "/api/offer", json={"pc_id": "SmallWebRTCConnection-none", "candidates": [CANDIDATE]}
    )
    assert unknown.status_code == 404  # held by no process
    bad = await b.client.patch(
        "/api/offer", json={"pc_id": pc_id, "candidates": [{**CANDIDATE, "candidate": "bogus"}]}
    )
    assert bad.status_code == 400  # A's verdict on the candidate, answered by B

    await a.router.close()  # the peer closes: A lets it go
    for _ in range(100):
        if await b.inbox.owners.owner_of(pc_id) is None:
            break
        await asyncio.sleep(0.02)
    assert await b.inbox.owners.owner_of(pc_id) is None
