"""Each call's event stream in the shared state: any process serves any call's events.

When several processes (and hosts) share the calls, the owner of a call appends its
events (:mod:`processors.call_events`) to a bounded shared log, and
``GET /api/calls/{id}/events`` on any process reads that log, waiting for new entries
with ``wait=`` across processes. The page is the one :class:`bot.operator.events.CallEventBus`
serves in a single process, with the same sequence numbers.

Keys (ids only; every one expires):

* ``callagent:events:<call_id>``: the log: ``{"type", "at_s", "data"}`` per event, and an
  end marker ``{"end": true}`` when the call ends; at most ``max_events`` (+1) entries,
  expiring ``keep_s`` after the last append (the end marker's, for an ended call).
* ``callagent:call:<id>`` for our call id and the provider's:
  ``{"call_id", "provider_call_id", "ended"}``; ``live_ttl_s`` while the call runs,
  ``keep_s`` from its end.

A call whose owner died (no end marker, no owner lease: see
:class:`integrations.shared_state.calls.CallOwners`) reads as no longer active.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any, cast

from loguru import logger

from integrations.shared_state.base import SharedState, SharedStateError
from integrations.shared_state.calls import CallOwners
from processors.call_events import CallEventObserver

KEEP_S = 600.0
"""How long an ended call's events stay readable."""
LIVE_TTL_S = 6 * 3600.0
"""The lookup keys' lifetime while a call runs (its end shortens it to ``keep_s``)."""
MAX_EVENTS = 1000
END_WAIT_S = 2.0
"""Longest a call's clean-up waits for its events' end to be written (the rest is written
behind it: a stalled engine does not hold the ended call's slot)."""
PAUSE_AFTER_FAILURE_S = 5.0
"""After a failed append, a call's events are dropped this long (the call never waits on
an unreachable engine event after event); its end marker is always tried."""


def events_log(call_id: str) -> str:
    """The shared log of a call's events."""
    return f"callagent:events:{call_id}"


def call_key(call_id: str) -> str:
    """The lookup key of a call id (ours or the provider's)."""
    return f"callagent:call:{call_id}"


@dataclass(frozen=True)
class _CallIds:
    call_id: str
    provider_call_id: str | None
    ended: bool
    started_at: float
    """Wall-clock start (epoch seconds): events noted by other processes are timed from it."""


class _SharedLogWriter(CallEventObserver):
    """One call's observer: its events appended, in order, by one writer task."""

    def __init__(self, events: SharedCallEvents, call_id: str, provider_call_id: str | None):
        super().__init__(self._enqueue, call_id=call_id)
        self._events = events
        self._ids = _CallIds(call_id, provider_call_id, ended=False, started_at=time.time())
        self._opened = time.monotonic()
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # built outside the loop: starts with the first event
            return
        self._start()  # findable from the start, before its first event

    def _enqueue(self, kind: str, data: dict[str, Any]) -> None:
        entry = {"type": kind, "at_s": round(time.monotonic() - self._opened, 3), "data": data}
        self._queue.put_nowait(entry)
        self._start()

    def _start(self) -> None:
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name=f"events-{self._ids.call_id}")

    async def _write(self) -> None:
        events, call_id = self._events, self._ids.call_id
        await events.put_ids(self._ids, ttl_s=events.live_ttl_s)
        paused_until = 0.0
        while (entry := await self._queue.get()) is not None:
            if time.monotonic() < paused_until:
                continue
            if not await events.append(call_id, entry):
                paused_until = time.monotonic() + PAUSE_AFTER_FAILURE_S
        await events.append(call_id, {"end": True})
        ended = dataclasses.replace(self._ids, ended=True)
        await events.put_ids(ended, ttl_s=events.keep_s)

    async def cleanup(self) -> None:
        await super().cleanup()
        self._queue.put_nowait(None)
        self._start()
        assert self._writer is not None
        # the end is written before the call's clean-up is over, unless the engine stalls
        _, pending = await asyncio.wait({self._writer}, timeout=END_WAIT_S)
        if pending:
            logger.bind(call_id=self._ids.call_id).warning(
                "call events' end still being written; the call's clean-up goes on"
            )
            self._events.finish_behind(self._writer)


class SharedCallEvents:
    """Calls' event streams in the shared state (see the module).

    Args:
        shared: The deployment's shared state.
        owners: Who owns each live call (a call without a live owner is not active).
        max_events: Events kept per call (the oldest go first).
        keep_s: How long an ended call's events stay readable.
        live_ttl_s: The lookup keys' lifetime while a call runs.
    """

    def __init__(
        self,
        shared: SharedState,
        owners: CallOwners | None = None,
        *,
        max_events: int = MAX_EVENTS,
        keep_s: float = KEEP_S,
        live_ttl_s: float = LIVE_TTL_S,
    ):
        """Streams kept in ``shared``."""
        self.shared = shared
        self.owners = owners
        self.max_events = max_events
        self.keep_s = keep_s
        self.live_ttl_s = live_ttl_s
        self._behind: set[asyncio.Task[None]] = set()

    def finish_behind(self, writer: asyncio.Task[None]) -> None:
        """Keep an ended call's writer running until it is done (the loop holds tasks weakly)."""
        self._behind.add(writer)
        writer.add_done_callback(self._behind.discard)

    def observer(self, call_id: str, provider_call_id: str | None = None) -> CallEventObserver:
        """The observer that publishes one call's events (on the owning process)."""
        return _SharedLogWriter(self, call_id, provider_call_id)

    async def page(self, call_id: str, after: int, wait_s: float) -> dict[str, Any] | None:
        """The call's events after ``after`` (see :class:`bot.operator.events.CallEventReader`)."""
        ids = await self._ids(call_id)
        if ids is None:
            return None
        entries = await self.shared.read(
            events_log(ids.call_id), after, wait_s=0.0 if ids.ended else wait_s
        )
        events: list[dict[str, Any]] = []
        ended = ids.ended
        for seq, raw in entries:
            entry = _entry(raw)
            if entry is None:
                continue
            if entry.get("end"):
                ended = True
                continue
            data = entry.get("data")
            extra = cast(dict[str, Any], data) if isinstance(data, dict) else {}
            kind, at_s = entry.get("type"), entry.get("at_s")
            events.append({"seq": seq, "at_s": at_s, "type": kind, **extra})
        active = not ended
        if active and self.owners is not None:  # its owner died without ending it
            active = await self.owners.owner_of(ids.call_id) is not None
        return {
            "call_id": ids.call_id,
            "provider_call_id": ids.provider_call_id,
            "active": active,
            "events": events,
            "next": events[-1]["seq"] if events else after,
        }

    async def note(self, call_id: str, kind: str, data: dict[str, Any]) -> None:
        """Add an event to a call's log from any process, also after its end."""
        ids = await self._ids(call_id)
        if ids is not None:
            at_s = round(max(0.0, time.time() - ids.started_at), 3)
            await self.append(ids.call_id, {"type": kind, "at_s": at_s, "data": data})

    async def append(self, call_id: str, entry: dict[str, Any]) -> bool:
        """Append one entry to a call's log; whether it was.

        A failure is logged, not raised: events never break a call.
        """
        try:
            await self.shared.append(
                events_log(call_id),
                json.dumps(entry),
                max_len=self.max_events + 1,
                ttl_s=self.keep_s,
            )
        except SharedStateError as e:
            logger.bind(call_id=call_id).warning(f"call event not shared ({e})")
            return False
        return True

    async def put_ids(self, ids: _CallIds, *, ttl_s: float) -> None:
        """Make the call findable by both its ids."""
        value = json.dumps(dataclasses.asdict(ids))
        try:
            for key in filter(None, (ids.call_id, ids.provider_call_id)):
                await self.shared.put(call_key(key), value, ttl_s=ttl_s)
        except SharedStateError as e:
            logger.bind(call_id=ids.call_id).warning(f"call events not findable ({e})")

    async def _ids(self, call_id: str) -> _CallIds | None:
        raw = await self.shared.get(call_key(call_id))
        found = _entry(raw) if raw is not None else None
        if found is None or not isinstance(found.get("call_id"), str):
            return None
        provider = found.get("provider_call_id")
        started = found.get("started_at")
        return _CallIds(
            str(found["call_id"]),
            provider if isinstance(provider, str) else None,
            bool(found.get("ended")),
            float(started) if isinstance(started, int | float) else time.time(),
        )


def _entry(raw: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return cast(dict[str, Any], parsed) if isinstance(parsed, dict) else None
