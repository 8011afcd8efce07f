"""SIP dials landing on a worker that does not hold the SIP port, forwarded to the one that does.

Under ``callagent serve --workers N`` one worker serves SIP (``bot/web/sip_server.py``);
``POST /sip/dial`` or an operator's SIP call may land on any of them. The serving worker
holds the shared key ``callagent:owner:sip:server`` (a :class:`CallOwners` claim on the id
:data:`SIP_SERVER`: a lease refreshed while it holds the port, gone within the lease when
it stops or dies), and answers :data:`SIP_DIAL` requests in its per-process inbox
(:class:`~integrations.shared_state.calls.CallInbox`). A standing-by worker asks it with
the attempt's signed token and relays its answer (the dial id, or the HTTP status the
serving worker refused with). Nothing is logged but statuses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from loguru import logger

from integrations.shared_state.base import SharedStateError
from integrations.shared_state.calls import CallInbox, CallOwners, CallUnreachableError, Payload

SIP_SERVER = "sip:server"
"""The id the SIP-serving worker claims (its owner key names the process)."""
SIP_DIAL = "sip.dial"
"""The inbox request kind: ``{"attempt": token}`` -> ``{"provider_call_id"}`` or a refusal."""
FORWARD_TIMEOUT_S = 5.0
"""Longest wait for the serving worker's answer (the INVITE goes out in the background)."""


class SipForwardError(Exception):
    """The dial was not placed; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class DialRefused(Exception):
    """Raised by the serving worker's dial: relayed to the asker with its status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


DialHere = Callable[[str], Awaitable[str]]
"""Dials the attempt a token names on this worker's endpoint; returns the dial id (raises
:class:`DialRefused` with the HTTP status)."""


class SipDialForwarding:
    """Both sides of forwarding (see the module).

    Args:
        inbox: This process's inbox (its owners say who serves SIP).
    """

    def __init__(self, inbox: CallInbox) -> None:
        self._inbox = inbox
        self._lease: AsyncExitStack | None = None

    @property
    def owners(self) -> CallOwners:
        """Who owns what in the deployment."""
        return self._inbox.owners

    def serve(self, dial_here: DialHere) -> None:
        """Answer the siblings' :data:`SIP_DIAL` requests with ``dial_here``."""

        async def answer(_id: str, payload: Payload) -> Payload:
            token = payload.get("attempt")
            if not isinstance(token, str) or not token:
                return {"status": 400, "error": "'attempt' is required"}
            try:
                return {"provider_call_id": await dial_here(token)}
            except DialRefused as e:
                return {"status": e.status, "error": str(e)}

        self._inbox.handle(SIP_DIAL, answer)

    async def hold(self) -> None:
        """This process now holds the SIP port: say so in the shared state (idempotent)."""
        if self._lease is not None:
            return
        lease = AsyncExitStack()
        await lease.enter_async_context(self.owners.claim(SIP_SERVER))
        self._lease = lease

    async def release(self) -> None:
        """This process gives the SIP port up."""
        lease, self._lease = self._lease, None
        if lease is not None:
            await lease.aclose()

    async def forward(self, token: str, *, timeout_s: float = FORWARD_TIMEOUT_S) -> str:
        """Have the SIP-serving worker dial the attempt ``token`` names; the dial id.

        Raises:
            SipForwardError: 503 when no worker serves SIP or it did not answer in time;
                else the status the serving worker refused with (403, 404, 409, 503).
        """
        try:
            reply = await self._inbox.ask(
                SIP_SERVER, SIP_DIAL, {"attempt": token}, timeout_s=timeout_s
            )
        except CallUnreachableError as e:
            logger.warning(f"SIP dial not forwarded ({e.reason})")
            raise SipForwardError(503, "no worker serves SIP now (try again)") from None
        except SharedStateError as e:
            logger.warning(f"SIP dial not forwarded (shared state: {type(e).__name__})")
            raise SipForwardError(503, "no worker serves SIP now (try again)") from None
        dial_id = reply.get("provider_call_id")
        if isinstance(dial_id, str) and dial_id:
            logger.info(f"SIP dial forwarded to the SIP-serving worker ({dial_id})")
            return dial_id
        status = reply.get("status")
        message = str(reply.get("error", "refused"))[:300]
        raise SipForwardError(status if isinstance(status, int) else 503, message)
