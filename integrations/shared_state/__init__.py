"""Shared call state: what must cross processes and hosts, through one small interface.

A call lives in exactly one process. Whatever must reach it from elsewhere (Twilio
callbacks, operator actions, event-stream readers) and whatever several processes must
agree on (one stream per CallSid, single-use tokens, operator sessions, campaign caps)
goes through :class:`~integrations.shared_state.base.SharedState`: in-process for the
embedded default (:mod:`.memory`), Redis or PostgreSQL at scale.
"""

from integrations.shared_state.base import (
    SharedState,
    SharedStateError,
    Subscription,
)

__all__ = ["SharedState", "SharedStateError", "Subscription"]
