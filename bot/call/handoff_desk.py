"""The hand-offs in flight, for the callbacks Twilio makes after a transfer's redirect.

Each Twilio hand-off (whisper text, customer id) is kept under an unguessable token. One
desk per process lives on the runtime (:class:`~bot.call.runtime.Runtime`); the per-call
wiring (:mod:`bot.call.handoff`) registers tickets and the Twilio callback routes
(:mod:`bot.web.handoff_routes`) read them.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

TICKET_TTL_S = 3600.0
MAX_TICKETS = 2000


@dataclass
class HandoffTicket:
    """One Twilio hand-off, kept for Twilio's callbacks after the redirect.

    Parameters:
        call_id: Our call id.
        trigger: Why the call was escalated.
        whisper: What the person answering hears (caller data: never log it).
        customer_id: The caller's CRM id ("" when unknown).
        created: Monotonic creation time.
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


class HandoffDesk:
    """Hand-offs in flight, by token (bounded; old ones expire)."""

    def __init__(self, ttl_s: float = TICKET_TTL_S, max_tickets: int = MAX_TICKETS):
        """Create an empty desk."""
        self._ttl_s = ttl_s
        self._max = max_tickets
        self._tickets: OrderedDict[str, HandoffTicket] = OrderedDict()

    def register(self, ticket: HandoffTicket) -> str:
        """Keep ``ticket``; returns its token."""
        now = time.monotonic()
        ticket.created = now
        while self._tickets:
            token, oldest = next(iter(self._tickets.items()))
            if now - oldest.created < self._ttl_s and len(self._tickets) < self._max:
                break
            del self._tickets[token]
        token = secrets.token_urlsafe(18)
        self._tickets[token] = ticket
        return token

    def get(self, token: str) -> HandoffTicket | None:
        """The ticket for ``token``, if it exists and has not expired."""
        ticket = self._tickets.get(token)
        if ticket is None or time.monotonic() - ticket.created > self._ttl_s:
            return None
        return ticket
