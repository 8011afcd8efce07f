"""The per-call event bus: each live call's turn events, readable by operators.

Every call's pipeline has a :class:`~processors.call_events.CallEventObserver` that
publishes typed events (NLU decision, reply decision, escalation, transfer, barge-in,
latency with its stages) here, under the call's id and its provider's id (the Twilio
``CallSid``). ``GET /api/calls/{id}/events`` (operator token) returns them, and can wait
for new ones, so a test client (``callagent simulate``) can check what the agent
recognised without any caller data ever reaching a log: events hold decisions and
timings only.

The bus is in-process and bounded: at most ``max_events`` per call, and a call's events
are kept ``keep_s`` after it ended (at most ``max_calls`` calls). When several processes
share the calls, :class:`bot.operator.shared_events.SharedCallEvents` keeps the same
events in the shared state instead, so that any process serves any call's events; both
are a :class:`CallEventReader`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import APIRouter, Depends, HTTPException, Query

from bot.operator.auth import OperatorAuth
from integrations.shared_state.base import SharedStateError
from processors.call_events import CallEventObserver

MAX_WAIT_S = 30.0
MAX_SEQ = 2**63 - 1
"""The largest ``after`` accepted (beyond any call's event count)."""
MAX_ID_CHARS = 128
"""Longer ids name no call (ours are UUIDs, Twilio's 34 characters)."""


class CallEventReader(Protocol):
    """Serves a call's events to ``GET /api/calls/{id}/events`` (this process's or shared)."""

    async def page(self, call_id: str, after: int, wait_s: float) -> dict[str, Any] | None:
        """The call's events after ``after``, waiting up to ``wait_s`` s for one.

        Returns:
            ``{"call_id", "provider_call_id", "active", "events", "next"}``, or None for an
            unknown call (or one whose events expired).
        """
        ...

    async def note(self, call_id: str, kind: str, data: dict[str, Any]) -> None:
        """Add an event from outside the call's pipeline (a Twilio callback about it)."""
        ...


@dataclass
class CallEvent:
    """One event of one call.

    Parameters:
        seq: Position in the call's log (1, 2, ...).
        at_s: Seconds since the call's log opened (the call started).
        type: The event type (see :mod:`processors.call_events`).
        data: Its fields (no caller data).
    """

    seq: int
    at_s: float
    type: str
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"seq": self.seq, "at_s": round(self.at_s, 3), "type": self.type, **self.data}


@dataclass
class CallLog:
    """The events of one call."""

    call_id: str
    provider_call_id: str | None
    opened: float = field(default_factory=time.monotonic)
    events: list[CallEvent] = field(default_factory=list)
    dropped: int = 0
    ended_at: float | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def active(self) -> bool:
        """Whether the call is still running."""
        return self.ended_at is None

    def append(self, kind: str, data: dict[str, Any], max_events: int) -> None:
        """Add an event (the oldest goes beyond ``max_events``)."""
        seq = (self.events[-1].seq if self.events else self.dropped) + 1
        self.events.append(CallEvent(seq, time.monotonic() - self.opened, kind, dict(data)))
        if len(self.events) > max_events:
            del self.events[0]
            self.dropped += 1
        self._wake()

    def after(self, seq: int) -> list[CallEvent]:
        """Events with a sequence number above ``seq``."""
        return [e for e in self.events if e.seq > seq]

    def end(self) -> None:
        """Mark the call ended."""
        if self.ended_at is None:
            self.ended_at = time.monotonic()
            self._wake()

    async def wait(self, timeout_s: float) -> None:
        """Wait until something changes (an event or the end), at most ``timeout_s``."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_s)
        except TimeoutError:
            pass

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


class CallEventBus:
    """Live and recent calls' event logs, by call id and provider call id."""

    def __init__(self, *, max_calls: int = 100, max_events: int = 1000, keep_s: float = 600.0):
        """Keep up to ``max_calls`` logs of ``max_events`` events, ``keep_s`` past their end."""
        self._max_calls = max_calls
        self._max_events = max_events
        self._keep_s = keep_s
        self._logs: OrderedDict[str, CallLog] = OrderedDict()
        self._aliases: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._logs)

    def open(self, call_id: str, provider_call_id: str | None = None) -> CallLog:
        """Start a call's log."""
        self._expire()
        log = CallLog(call_id, provider_call_id)
        self._logs[call_id] = log
        if provider_call_id:
            self._aliases[provider_call_id] = call_id
        return log

    def publish(self, call_id: str, kind: str, data: dict[str, Any]) -> None:
        """Append an event to a call's log (ignored for an unknown call)."""
        log = self._logs.get(call_id)
        if log is not None:
            log.append(kind, data, self._max_events)

    def end(self, call_id: str) -> None:
        """Mark a call ended (its log is kept ``keep_s`` longer)."""
        log = self._logs.get(call_id)
        if log is not None:
            log.end()
        self._expire()

    def get(self, call_id: str) -> CallLog | None:
        """A call's log by our call id or the provider's call id."""
        return self._logs.get(call_id) or self._logs.get(self._aliases.get(call_id, ""))

    def observer(self, call_id: str, provider_call_id: str | None = None) -> CallEventObserver:
        """Open a call's log and return the observer that fills it."""
        self.open(call_id, provider_call_id)
        return _BusObserver(self, call_id)

    async def page(self, call_id: str, after: int, wait_s: float) -> dict[str, Any] | None:
        """The call's events after ``after`` (see :meth:`CallEventReader.page`)."""
        log = self.get(call_id)
        if log is None:
            return None
        deadline = time.monotonic() + wait_s
        while not log.after(after) and log.active and time.monotonic() < deadline:
            await log.wait(deadline - time.monotonic())
        events = log.after(after)
        return {
            "call_id": log.call_id,
            "provider_call_id": log.provider_call_id,
            "active": log.active,
            "events": [e.to_json() for e in events],
            "next": events[-1].seq if events else after,
        }

    async def note(self, call_id: str, kind: str, data: dict[str, Any]) -> None:
        """Add an event to a call's log, also after its end (ignored for an unknown call)."""
        log = self.get(call_id)
        if log is not None:
            log.append(kind, data, self._max_events)

    def _expire(self) -> None:
        now = time.monotonic()
        ended = [(cid, log) for cid, log in self._logs.items() if log.ended_at is not None]
        excess = len(self._logs) - self._max_calls
        for cid, log in ended:
            assert log.ended_at is not None
            if excess > 0 or now - log.ended_at > self._keep_s:
                self._drop(cid)
                excess -= 1

    def _drop(self, call_id: str) -> None:
        log = self._logs.pop(call_id, None)
        if log is not None and log.provider_call_id:
            self._aliases.pop(log.provider_call_id, None)


class _BusObserver(CallEventObserver):
    def __init__(self, bus: CallEventBus, call_id: str):
        super().__init__(lambda kind, data: bus.publish(call_id, kind, data), call_id=call_id)
        self._bus = bus
        self._bus_call_id = call_id

    async def cleanup(self) -> None:
        await super().cleanup()
        self._bus.end(self._bus_call_id)


def create_call_events_router(events: CallEventReader, auth: OperatorAuth) -> APIRouter:
    """``GET /api/calls/{call_id}/events`` (operator token).

    Query parameters: ``after`` (return events with a higher ``seq``; default 0) and
    ``wait`` (seconds to wait for a new event when there is none yet; 0-30, default 0).
    ``call_id`` is our call id or the provider's (Twilio ``CallSid``).
    """
    router = APIRouter(prefix="/api/calls", dependencies=[Depends(auth.require)])

    @router.get("/{call_id}/events")
    async def call_events(
        call_id: str,
        after: int = Query(0, ge=0, le=MAX_SEQ),
        wait: float = Query(0.0, ge=0.0, le=MAX_WAIT_S, allow_inf_nan=False),
    ) -> dict[str, Any]:
        """The call's events after ``after``, waiting up to ``wait`` s for one."""
        if len(call_id) > MAX_ID_CHARS:
            raise HTTPException(404, "no such call (or its events have expired)")
        try:
            page = await events.page(call_id, after, wait)
        except SharedStateError:
            raise HTTPException(503, "the shared call state is unreachable: try again") from None
        if page is None:
            raise HTTPException(404, "no such call (or its events have expired)")
        return page

    return router
