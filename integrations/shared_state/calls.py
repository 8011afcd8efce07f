"""Which process owns a live call, and a request/reply inbox that reaches it.

A call lives in exactly one process. :class:`CallOwners` records which one under the
call's ids (a lease, refreshed while the call runs and removed at its end);
:class:`CallInbox` carries a request from any process to the owner and its reply back.

Keys and channels (ids only, never caller data):

* ``callagent:owner:<id>`` -> ``{"process": <process id>, "call_id": <our call id>}`` for
  our call id and, when known, the provider's (Twilio ``CallSid``); expires
  :data:`LEASE_S` after its last refresh (every :data:`REFRESH_S`), so a crashed owner's
  calls stop being found within a lease.
* ``callagent:inbox:<process id>``: requests ``{"id", "kind", "call_id", "payload",
  "reply_to"}``; ``callagent:reply:<process id>``: replies ``{"id", "ok", "result" |
  "error"}``.

The process id is :meth:`integrations.storage.workers.WorkerId.current` (``host:pid:token``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from loguru import logger

from integrations.shared_state.base import SharedState, SharedStateError, Subscription

LEASE_S = 30.0
"""How long an owner key outlives its last refresh."""
REFRESH_S = 10.0
"""How often a running call's owner keys are refreshed."""
ASK_TIMEOUT_S = 5.0
"""Default wait for the owner's reply."""
RESUBSCRIBE_S = 1.0
"""Pause before listening again after the engine dropped a subscription."""
CLAIM_WAIT_S = 1.0
"""Longest a call's start waits for its ownership to be recorded (a slow or lost engine:
the call starts, and the record is made meanwhile)."""

Payload = dict[str, Any]
Handler = Callable[[str, Payload], Awaitable[Payload]]
"""Handles one request on the owning process: ``(our call id, payload) -> reply``."""


def owner_key(call_id: str) -> str:
    """The owner key of a call id (ours or the provider's)."""
    return f"callagent:owner:{call_id}"


def inbox_channel(process_id: str) -> str:
    """The channel a process takes requests on."""
    return f"callagent:inbox:{process_id}"


def reply_channel(process_id: str) -> str:
    """The channel a process takes replies on."""
    return f"callagent:reply:{process_id}"


class CallUnreachableError(RuntimeError):
    """A request could not be answered by the call's owner.

    Parameters:
        reason: ``no_owner`` (no live process owns the call), ``timeout`` (the owner did not
            answer in time) or ``refused`` (the owner answered with an error).
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Owner:
    """The process a live call runs in.

    Parameters:
        process_id: The owner's process id (``host:pid:token``).
        call_id: Our id of the call (also when it was looked up by the provider's).
    """

    process_id: str
    call_id: str


class CallClaim:
    """One call's ownership while it runs (``async with``; see :meth:`CallOwners.claim`)."""

    def __init__(self, owners: CallOwners, call_id: str, provider_call_id: str | None):
        """Claim ``call_id`` (and ``provider_call_id``) for ``owners``' process."""
        self._owners = owners
        self.call_id = call_id
        self._ids = [call_id] + ([provider_call_id] if provider_call_id else [])
        self._recorded: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None

    async def add_id(self, provider_call_id: str) -> None:
        """Find the call by the provider's id too (learnt after the claim)."""
        if provider_call_id and provider_call_id not in self._ids:
            self._ids.append(provider_call_id)
            await self._put([provider_call_id])

    async def __aenter__(self) -> CallClaim:
        recorded = self._recorded = asyncio.create_task(
            self._put(self._ids), name=f"claim-{self.call_id}"
        )
        _, waiting = await asyncio.wait({recorded}, timeout=self._owners.claim_wait_s)
        if waiting:  # an engine this slow is failing: the call does not wait on it
            logger.bind(call_id=self.call_id).warning(
                "call ownership not recorded yet; the call starts meanwhile"
            )
        self._refresher = asyncio.create_task(self._refresh(recorded), name=f"lease-{self.call_id}")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for task in (self._recorded, self._refresher):  # a first record still pending too
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._owners.release(self._ids, self.call_id)

    async def _refresh(self, recorded: asyncio.Task[None]) -> None:
        await asyncio.shield(recorded)  # the claim's exit cancels it if still pending
        while True:
            await asyncio.sleep(self._owners.refresh_s)
            await self._put(self._ids)

    async def _put(self, ids: list[str]) -> None:
        value = json.dumps({"process": self._owners.process_id, "call_id": self.call_id})
        try:
            for call_id in ids:
                await self._owners.shared.put(owner_key(call_id), value, ttl_s=self._owners.lease_s)
        except SharedStateError as e:  # the call goes on; others cannot reach it meanwhile
            logger.bind(call_id=self.call_id).warning(f"call ownership not recorded ({e})")


class CallOwners:
    """Which process owns each live call (see the module).

    Args:
        shared: The deployment's shared state.
        process_id: This process's id.
        lease_s: Owner keys' lifetime after a refresh.
        refresh_s: Seconds between refreshes.
        claim_wait_s: Longest a claim waits for its first record before the call starts.
    """

    def __init__(
        self,
        shared: SharedState,
        process_id: str,
        *,
        lease_s: float = LEASE_S,
        refresh_s: float = REFRESH_S,
        claim_wait_s: float = CLAIM_WAIT_S,
    ):
        """Owners recorded in ``shared`` on behalf of ``process_id``."""
        self.shared = shared
        self.process_id = process_id
        self.lease_s = lease_s
        self.refresh_s = refresh_s
        self.claim_wait_s = claim_wait_s

    def claim(self, call_id: str, provider_call_id: str | None = None) -> CallClaim:
        """Own the call while the returned context is open (``async with owners.claim(...)``)."""
        return CallClaim(self, call_id, provider_call_id)

    async def owner_of(self, call_id: str) -> Owner | None:
        """The live owner of a call (our id or the provider's); None when none is."""
        raw = await self.shared.get(owner_key(call_id))
        if raw is None:
            return None
        try:
            found = json.loads(raw)
            return Owner(str(found["process"]), str(found["call_id"]))
        except (ValueError, KeyError, TypeError):
            logger.warning(f"unreadable owner record for call {call_id} ({len(raw)} bytes)")
            return None

    async def release(self, ids: list[str], call_id: str) -> None:
        """Remove the owner keys of ``ids`` that still name this process."""
        try:
            for key in ids:
                owner = await self.owner_of(key)
                if owner is not None and owner.process_id == self.process_id:
                    await self.shared.delete(owner_key(key))
        except SharedStateError as e:  # the lease expires by itself
            logger.bind(call_id=call_id).warning(f"call ownership not released ({e})")


class CallInbox:
    """Requests to a call's owner and their replies (see the module).

    Register a :data:`Handler` per request kind on every process with :meth:`handle`;
    :meth:`start` listens (from the server's start-up), :meth:`ask` reaches a call.
    """

    def __init__(self, owners: CallOwners):
        """An inbox for ``owners``' process."""
        self.owners = owners
        self._handlers: dict[str, Handler] = {}
        self._pending: dict[str, asyncio.Future[Payload]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._listeners: list[asyncio.Task[None]] = []
        self._closed = False

    @property
    def process_id(self) -> str:
        """This process's id."""
        return self.owners.process_id

    def handle(self, kind: str, handler: Handler) -> None:
        """Answer requests of ``kind`` with ``handler`` (on the owning process)."""
        self._handlers[kind] = handler

    async def start(self) -> None:
        """Listen for requests and replies (idempotent)."""
        if self._listeners:
            return
        self._closed = False
        for channel, on_message in (
            (inbox_channel(self.process_id), self._on_request),
            (reply_channel(self.process_id), self._on_reply),
        ):
            subscription = await self.owners.shared.subscribe(channel)
            self._listeners.append(
                asyncio.create_task(self._listen(channel, on_message, subscription))
            )

    async def aclose(self) -> None:
        """Stop listening; pending asks fail as unanswered."""
        self._closed = True
        for task in [*self._listeners, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._listeners, *self._tasks, return_exceptions=True)
        self._listeners.clear()
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()

    async def ask(
        self, call_id: str, kind: str, payload: Payload, *, timeout_s: float = ASK_TIMEOUT_S
    ) -> Payload:
        """Send a request of ``kind`` to the process that owns ``call_id``; its reply.

        Args:
            call_id: Our call id or the provider's.
            kind: The request kind (a handler registered on the owner).
            payload: JSON-ready fields of the request (no caller data).
            timeout_s: Longest wait for the reply.

        Raises:
            CallUnreachableError: no live owner, no reply in time, or the owner refused.
        """
        owner = await self.owners.owner_of(call_id)
        if owner is None:
            raise CallUnreachableError(f"no live process owns call {call_id}", "no_owner")
        if owner.process_id == self.process_id:  # ours: no round trip
            reply = await self._answer(kind, owner.call_id, payload)
            return _reply_result(reply, owner.call_id)
        if not self._listeners:
            raise CallUnreachableError("the inbox is not started: replies cannot arrive", "timeout")
        request_id = secrets.token_hex(8)
        future: asyncio.Future[Payload] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        request = {
            "id": request_id,
            "kind": kind,
            "call_id": owner.call_id,
            "payload": payload,
            "reply_to": reply_channel(self.process_id),
        }
        try:
            await self.owners.shared.publish(inbox_channel(owner.process_id), json.dumps(request))
            reply = await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise CallUnreachableError(
                f"the owner of call {owner.call_id} did not answer {kind} in {timeout_s:g} s",
                "timeout",
            ) from None
        finally:
            self._pending.pop(request_id, None)
        return _reply_result(reply, owner.call_id)

    async def _listen(
        self,
        channel: str,
        on_message: Callable[[Payload], None],
        subscription: Subscription,
    ) -> None:
        while not self._closed:
            try:
                async for message in subscription:
                    try:
                        parsed = json.loads(message)
                    except ValueError:
                        parsed = None
                    if not isinstance(parsed, dict):
                        logger.warning(f"unreadable message on {channel} ({len(message)} bytes)")
                        continue
                    on_message(cast(Payload, parsed))
            except SharedStateError as e:
                logger.warning(f"listening on {channel} stopped ({e}); listening again")
            finally:
                with contextlib.suppress(SharedStateError):
                    await subscription.aclose()
            resubscribed = await self._resubscribe(channel)
            if resubscribed is None:
                return
            subscription = resubscribed

    async def _resubscribe(self, channel: str) -> Subscription | None:
        """Listen on ``channel`` again, trying until it works; None once the inbox closed."""
        while not self._closed:
            await asyncio.sleep(RESUBSCRIBE_S)
            try:
                return await self.owners.shared.subscribe(channel)
            except SharedStateError as e:
                logger.warning(f"cannot listen on {channel} ({e}); trying again")
        return None

    def _on_request(self, request: Payload) -> None:
        task = asyncio.create_task(self._serve(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, request: Payload) -> None:
        reply_to = request.get("reply_to")
        kind, call_id = str(request.get("kind", "")), str(request.get("call_id", ""))
        payload = request.get("payload")
        if not isinstance(reply_to, str) or not isinstance(payload, dict):
            logger.warning(f"malformed {kind[:32]} request for call {call_id[:64]}: dropped")
            return
        reply = await self._answer(kind, call_id, cast(Payload, payload))
        reply["id"] = request.get("id")
        try:
            await self.owners.shared.publish(reply_to, json.dumps(reply))
        except SharedStateError as e:
            logger.bind(call_id=call_id).warning(f"reply to {kind} not sent ({e})")

    async def _answer(self, kind: str, call_id: str, payload: Payload) -> Payload:
        handler = self._handlers.get(kind)
        if handler is None:
            return {"ok": False, "error": f"no handler for {kind[:32]!r}"}
        try:
            return {"ok": True, "result": await handler(call_id, payload)}
        except Exception as e:  # noqa: BLE001 - the asker learns it failed, the owner logs why
            logger.bind(call_id=call_id).warning(f"{kind} request failed ({type(e).__name__})")
            return {"ok": False, "error": type(e).__name__}

    def _on_reply(self, reply: Payload) -> None:
        future = self._pending.get(str(reply.get("id", "")))
        if future is not None and not future.done():
            future.set_result(reply)


def _reply_result(reply: Payload, call_id: str) -> Payload:
    if not reply.get("ok"):
        raise CallUnreachableError(
            f"the owner of call {call_id} refused: {reply.get('error', 'unknown error')}",
            "refused",
        )
    result = reply.get("result")
    return cast(Payload, result) if isinstance(result, dict) else {}
