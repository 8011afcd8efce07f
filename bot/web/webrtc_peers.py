"""Browser calls' peer connections across processes: trickled ICE reaches the peer's process.

The process that answered a browser's offer holds the peer connection (and the call's
media). It records that under the peer's id (``callagent:owner:<pc_id>``, a lease like a
call's, see :class:`~integrations.shared_state.calls.CallOwners`) until the connection
closes; a ``PATCH /api/offer`` that a load balancer sent to another process is handed to
it through its inbox (request kind :data:`ICE_CANDIDATES`). The candidates travel in the
request and are never logged.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException
from loguru import logger

from integrations.shared_state.base import SharedStateError
from integrations.shared_state.calls import CallInbox, CallUnreachableError
from transports.webrtc import WebRTCRouter

ICE_CANDIDATES = "webrtc_ice"
"""The inbox request carrying a trickle-ICE body to the peer's process."""
FORWARD_TIMEOUT_S = 3.0
MAX_PC_ID_CHARS = 128


class InboxPeers:
    """:class:`transports.webrtc.PeerOwners` on the deployment's call owners and inboxes."""

    def __init__(self, inbox: CallInbox) -> None:
        """Peers recorded with ``inbox``'s owners; trickled ICE forwarded through it."""
        self._inbox = inbox

    def serve(self, router: WebRTCRouter) -> None:
        """Answer other processes' trickle-ICE requests for ``router``'s peers."""

        async def add(_pc_id: str, body: dict[str, Any]) -> dict[str, Any]:
            try:
                await router.add_candidates(body)
            except HTTPException as e:
                return {"status": e.status_code}
            return {"status": 200}

        self._inbox.handle(ICE_CANDIDATES, add)

    async def hold(self, pc_id: str) -> Callable[[], Coroutine[Any, Any, None]]:
        """Record this process as the peer's until the returned callable is awaited."""
        claim = self._inbox.owners.claim(pc_id)
        await claim.__aenter__()

        async def release() -> None:
            await claim.__aexit__(None, None, None)

        return release

    async def forward_patch(self, pc_id: str, body: dict[str, Any]) -> bool:
        """Hand the request to the peer's process; whether it took the candidates."""
        if len(pc_id) > MAX_PC_ID_CHARS:
            return False
        try:
            reply = await self._inbox.ask(pc_id, ICE_CANDIDATES, body, timeout_s=FORWARD_TIMEOUT_S)
        except CallUnreachableError as e:
            if e.reason != "no_owner":
                logger.warning(f"ICE candidates for peer {pc_id} not forwarded ({e.reason})")
            return False
        except SharedStateError as e:
            logger.warning(f"ICE candidates for peer {pc_id} not forwarded ({e})")
            return False
        if reply.get("status") == 400:
            raise HTTPException(400, "an ICE candidate could not be parsed")
        return reply.get("status") == 200
