"""The hand-offs in flight, for the callbacks Twilio makes after a transfer's redirect.

Each Twilio hand-off (whisper text, customer id) is kept under an unguessable token in the
deployment's shared state (``callagent:handoff:<token>``, JSON, expiring after
:data:`TICKET_TTL_S`), so Twilio's whisper, Dial-action and callback requests find it on
whichever process of the deployment receives them. The runtime
(:class:`~bot.call.runtime.Runtime`) carries the desk; the per-call wiring
(:mod:`bot.call.handoff`) registers tickets and the Twilio callback routes
(:mod:`bot.web.handoff_routes`) read and update them.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import time
from dataclasses import dataclass

from integrations.shared_state.base import SharedState
from integrations.shared_state.memory import MemorySharedState

TICKET_TTL_S = 3600.0
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")
"""What a token looks like (anything else names no ticket)."""


@dataclass
class HandoffTicket:
    """One Twilio hand-off, kept for Twilio's callbacks after the redirect.

    Parameters:
        call_id: Our call id.
        trigger: Why the call was escalated.
        whisper: What the person answering hears (caller data: never log it).
        customer_id: The caller's CRM id ("" when unknown).
        created: Wall-clock creation time (seconds since the epoch).
        dial_status: Twilio's ``DialCallStatus`` once the dial ended.
        callback_requested: The caller asked for a callback after a failed dial.
    """

    call_id: str
    trigger: str
    whisper: str
    customer_id: str = ""
    created: float = 0.0
    dial_status: str | None = None
    callback_requested: bool = False


def ticket_key(token: str) -> str:
    """The shared key of a hand-off's ticket."""
    return f"callagent:handoff:{token}"


class HandoffDesk:
    """Hand-offs in flight, by token, in the shared state (see the module).

    Args:
        shared: The deployment's shared state (default: this process's own).
        ttl_s: How long a ticket is kept.
    """

    def __init__(self, shared: SharedState | None = None, ttl_s: float = TICKET_TTL_S):
        """A desk on ``shared``."""
        self.shared: SharedState = shared if shared is not None else MemorySharedState()
        self._ttl_s = ttl_s

    async def register(self, ticket: HandoffTicket) -> str:
        """Keep ``ticket``; returns its token.

        Raises:
            SharedStateError: the shared state is unreachable (the transfer fails).
        """
        ticket.created = time.time()
        token = secrets.token_urlsafe(18)
        await self.shared.put(ticket_key(token), _dump(ticket), ttl_s=self._ttl_s)
        return token

    async def get(self, token: str) -> HandoffTicket | None:
        """The ticket for ``token``, if it exists and has not expired."""
        if not TOKEN_PATTERN.fullmatch(token):
            return None
        raw = await self.shared.get(ticket_key(token))
        if raw is None:
            return None
        try:
            fields = json.loads(raw)
            return HandoffTicket(**fields)
        except (ValueError, TypeError):
            return None

    async def update(self, token: str, ticket: HandoffTicket) -> None:
        """Store what a callback learnt (dial status, callback) for the ticket's time left."""
        left = self._ttl_s - (time.time() - ticket.created)
        if left > 0 and TOKEN_PATTERN.fullmatch(token):
            await self.shared.put(ticket_key(token), _dump(ticket), ttl_s=left)


def _dump(ticket: HandoffTicket) -> str:
    return json.dumps(dataclasses.asdict(ticket))
