"""Call admission: how many calls this process carries, and how fast one client may start them.

One mechanism guards every call-starting endpoint (``POST /api/offer``, ``POST /api/rooms``,
``POST /twilio/voice``, the ``/twilio/stream`` WebSocket upgrade and ``POST
/api/calls/outbound``, refused like the voice webhook when no slot is free):

- **Rate**: a token bucket per (route, client address): ``CALLAGENT_CALL_RATE_BURST`` starts
  at once, then ``CALLAGENT_CALL_RATE_PER_MINUTE``. Over it: HTTP 429 with ``Retry-After``
  (WebSocket: close code 1013, "try again later").
- **Capacity**: at most ``CALLAGENT_MAX_CALLS`` :class:`CallSlot` s held at once. A slot is
  taken when a call is admitted and held until the call ends: a browser offer holds one while
  its peer connection is being set up (and gives it back if the peer never connects), a room
  call or a browser call hands it to the ``CallManager`` (``bot/web/call_manager.py``), which
  frees it when the call's pipeline ends, and a Twilio stream holds one for as long as its WebSocket
  lives. Over the cap: HTTP 503 with ``Retry-After`` (WebSocket: close code 1013). The Twilio
  voice webhook takes no slot (its stream will); when none is free its handler answers as
  the agent file's ``when_full`` says (``bot/web/when_full.py``).
- **Draining**: once :meth:`Admission.stop_admitting` is called (SIGTERM, ``bot/serving/``)
  every new call is refused as over the cap (reason ``draining``); calls already admitted
  go on, and so does the second half of a call answered before the drain: a Twilio media
  stream (:data:`PROMISED_ROUTES`) is the leg of a webhook that was answered with a
  ``<Stream>`` (a webhook during the drain is answered as ``when_full`` says, and a replay
  is refused by the CallSid ledger), so it still takes a free slot; so does the answer of
  an outbound call placed before the drain (the callee has picked up).

The client address is the connecting address; behind a reverse proxy, set
``CALLAGENT_TRUSTED_PROXIES`` and the address the proxies name in ``X-Forwarded-For`` is used
instead (the right-most one that is not itself a trusted proxy). Every refusal (here, and the
browser page's origin, content-type and credential checks in ``bot/web/call_access.py``) is
logged with the route, the reason and a salted hash of the client address, never the address,
and counted; ``GET /api/diagnostics`` (operator token) shows the counts.

:class:`Admission` is the seam for running several processes: :class:`LocalAdmission` counts
in this process; a shared implementation (e.g. Redis counters) can take its place without the
routes changing.

The rate and cap checks of the Twilio routes and the rate checks of the other two routes are
done by :class:`AdmissionMiddleware` (an ASGI middleware, so the Twilio handlers themselves
are unchanged); the WebRTC offer and room routes take their slot in code because the slot
outlives the request.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any, Literal, Protocol

from fastapi import HTTPException
from loguru import logger
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.client_address import ClientAddresses

RefusalReason = Literal["rate", "capacity", "draining", "origin", "content_type", "credentials"]

WS_TRY_AGAIN_LATER = 1013
"""WebSocket close code for "try again later" (RFC 6455 registry)."""

CAPACITY_RETRY_AFTER_S = 5
"""What a refusal over the cap tells the client to wait: calls end every few seconds."""

MAX_TRACKED_CLIENTS = 10_000
"""Rate buckets kept at most (least recently used dropped: a dropped client starts full)."""

CALL_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/api/offer"): "webrtc",
    ("POST", "/api/rooms"): "rooms",
    ("POST", "/twilio/voice"): "twilio-voice",
    ("WEBSOCKET", "/twilio/stream"): "twilio-stream",
    ("POST", "/api/calls/outbound"): "outbound",
}
"""Every call-starting endpoint (method, path) and the route name refusals are counted by."""
PROMISED_ROUTES = frozenset({"twilio-stream", "twilio-answer"})
"""Routes that finish a call admitted before a drain: they take a slot while draining.

``twilio-answer`` is the voice webhook of an outbound call this deployment placed, when the
callee answers: refusing it would hang up on a person who just picked up."""


class Refused(HTTPException):
    """A call was not admitted: 429 (rate) or 503 (capacity), with ``Retry-After``.

    Parameters:
        reason: ``"rate"`` or ``"capacity"``.
        retry_after_s: Whole seconds the client should wait before trying again.
    """

    def __init__(self, reason: Literal["rate", "capacity"], retry_after_s: int, detail: str):
        self.reason: Literal["rate", "capacity"] = reason
        self.retry_after_s = max(1, retry_after_s)
        super().__init__(
            429 if reason == "rate" else 503,
            detail,
            headers={"Retry-After": str(self.retry_after_s)},
        )


class CallSlot:
    """One place under the call cap; :meth:`release` gives it back (once)."""

    def __init__(self, release: Callable[[], None]) -> None:
        """Hold a slot that ``release`` frees."""
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        """Free the slot (idempotent)."""
        release, self._release = self._release, None
        if release is not None:
            release()


class Admission(Protocol):
    """Decides whether a call may start: the call cap and per-client rates.

    Implementations: :class:`LocalAdmission` (this process); a shared one (Redis) for
    several processes behind one load balancer.
    """

    def check_rate(self, route: str, client: str) -> None:
        """Take one start from the client's bucket for ``route``.

        Raises:
            Refused: 429 when the client is over its rate.
        """
        ...

    def acquire(self, route: str, client: str) -> CallSlot:
        """Take a call slot; release it when the call ends (or never starts).

        Raises:
            Refused: 503 when every slot is held, or while draining (but on
                :data:`PROMISED_ROUTES`).
        """
        ...

    def check_room(self, route: str, client: str) -> None:
        """Check that a slot is free now, taking none (an endpoint that leads to a call).

        Raises:
            Refused: 503 when every slot is held.
        """
        ...

    def refused(self, route: str, reason: RefusalReason, client: str) -> None:
        """Count and log one refusal (the client as a salted hash, never its address)."""
        ...

    def stop_admitting(self) -> None:
        """Refuse every new call from now on (the process drains); admitted calls go on."""
        ...

    @property
    def admitting(self) -> bool:
        """False once :meth:`stop_admitting` was called."""
        ...

    @property
    def max_calls(self) -> int:
        """Slots in all."""
        ...

    @property
    def in_use(self) -> int:
        """Slots held now."""
        ...

    def stats(self) -> dict[str, Any]:
        """The cap, the slots held and the refusals so far by route and reason."""
        ...


class TokenBucket:
    """A token bucket: ``burst`` tokens, refilled at ``rate_per_s``.

    Args:
        rate_per_s: Tokens added per second.
        burst: Most tokens the bucket holds (it starts full).
        now: The current ``time.monotonic()`` reading.
    """

    __slots__ = ("_rate", "_burst", "_tokens", "_at")

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._tokens = float(burst)
        self._at = now

    def take(self, now: float) -> float:
        """Take a token: 0 when taken, else the seconds until one is available."""
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate


class LocalAdmission:
    """:class:`Admission` counted in this process (one server process, or one per replica).

    Args:
        max_calls: Slots (calls at once).
        rate_per_minute: Starts per client and route per minute; 0 for no rate limit.
        burst: Starts per client and route at once.
        addresses: How clients are named in logs (the server's :class:`ClientAddresses`).
        clock: ``time.monotonic`` (tests pass their own).
    """

    def __init__(
        self,
        max_calls: int,
        rate_per_minute: float,
        burst: int,
        *,
        addresses: ClientAddresses | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_calls = max_calls
        self._admitting = True
        self._rate_per_s = rate_per_minute / 60.0
        self._burst = burst
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str], TokenBucket] = OrderedDict()
        self._held = 0
        self._refusals: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()  # routes run on one loop; the lock keeps it safe anyway
        self._addresses = addresses if addresses is not None else ClientAddresses()

    @property
    def max_calls(self) -> int:
        """Slots in all."""
        return self._max_calls

    @property
    def in_use(self) -> int:
        """Slots held now."""
        return self._held

    @property
    def admitting(self) -> bool:
        """False once :meth:`stop_admitting` was called."""
        return self._admitting

    def stop_admitting(self) -> None:
        """Refuse every new call from now on (see :class:`Admission`)."""
        self._admitting = False

    def check_rate(self, route: str, client: str) -> None:
        """Take one start from the client's bucket for ``route`` (see :class:`Admission`)."""
        if self._rate_per_s <= 0:
            return
        now = self._clock()
        key = (route, client)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self._rate_per_s, self._burst, now)
                if len(self._buckets) > MAX_TRACKED_CLIENTS:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
            wait_s = bucket.take(now)
        if wait_s > 0:
            self.refused(route, "rate", client)
            raise Refused(
                "rate",
                math.ceil(wait_s),
                f"too many calls from this client: at most {self._burst} at once and "
                f"{self._rate_per_s * 60:g} a minute (CALLAGENT_CALL_RATE_PER_MINUTE)",
            )

    def acquire(self, route: str, client: str) -> CallSlot:
        """Take a call slot (see :class:`Admission`)."""
        with self._lock:
            admitting = self._admitting or route in PROMISED_ROUTES
            taken = admitting and self._held < self._max_calls
            if taken:
                self._held += 1
        if not taken:
            raise self._full(route, client)
        return CallSlot(self._release)

    def check_room(self, route: str, client: str) -> None:
        """Check that a slot is free now, taking none (see :class:`Admission`)."""
        draining = not self._admitting and route not in PROMISED_ROUTES
        if draining or self._held >= self._max_calls:
            raise self._full(route, client)

    def _full(self, route: str, client: str) -> Refused:
        if not self._admitting and route not in PROMISED_ROUTES:
            self.refused(route, "draining", client)
            return Refused(
                "capacity",
                CAPACITY_RETRY_AFTER_S,
                "this agent process is shutting down and takes no new calls; try again",
            )
        self.refused(route, "capacity", client)
        return Refused(
            "capacity",
            CAPACITY_RETRY_AFTER_S,
            f"the agent is carrying its maximum of {self.max_calls} calls "
            "(CALLAGENT_MAX_CALLS); try again shortly",
        )

    def _release(self) -> None:
        with self._lock:
            self._held -= 1

    def refused(self, route: str, reason: RefusalReason, client: str) -> None:
        """Count and log one refusal (see :class:`Admission`)."""
        with self._lock:
            self._refusals[(route, reason)] += 1
        logger.warning(
            f"call refused: route={route} reason={reason} client={self._addresses.ref(client)}"
        )

    def stats(self) -> dict[str, Any]:
        """The cap, the slots held and the refusals so far by route and reason."""
        with self._lock:
            refused: dict[str, dict[str, int]] = {}
            for (route, reason), n in sorted(self._refusals.items()):
                refused.setdefault(route, {})[reason] = n
            return {
                "max_calls": self._max_calls,
                "slots_in_use": self._held,
                "admitting": self._admitting,
                "refused": refused,
            }


class AdmissionMiddleware:
    """Applies :class:`Admission` to the call-starting routes in :data:`CALL_ROUTES`.

    Every one is rate-checked per client. ``/api/calls/outbound`` is also refused (503) when
    no slot is free (``/twilio/voice`` answers as the agent file says, in its handler, once
    its signature is checked), and a ``/twilio/stream`` WebSocket holds a slot for as long
    as it is open (refused with close code 1013 when none is free). ``/api/offer`` and
    ``/api/rooms`` take their slot in their handlers, where the call is started.

    Args:
        app: The ASGI app.
        admission: The admission policy.
        addresses: How the client address is read.
    """

    def __init__(self, app: ASGIApp, admission: Admission, addresses: ClientAddresses) -> None:
        self.app = app
        self.admission = admission
        self.addresses = addresses

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Admit or refuse a call-starting request; pass everything else through."""
        kind = scope["type"]
        method = "WEBSOCKET" if kind == "websocket" else scope.get("method", "")
        route = CALL_ROUTES.get((method, scope.get("path", ""))) if kind != "lifespan" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        client = self.addresses.of(HTTPConnection(scope))
        slot: CallSlot | None = None
        try:
            self.admission.check_rate(route, client)
            if route == "twilio-stream":
                slot = self.admission.acquire(route, client)
            elif route == "outbound":
                # the call's stream (Twilio) or answered offer (browser) takes the slot
                self.admission.check_room(route, client)
        except Refused as refusal:
            await _refuse(scope, receive, send, refusal)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            if slot is not None:
                slot.release()


async def _refuse(scope: Scope, receive: Receive, send: Send, refusal: Refused) -> None:
    """Answer a refused request: JSON 429/503 with Retry-After, or a WebSocket closed 1013."""
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        reason = "try again later: " + ("rate" if refusal.reason == "rate" else "at capacity")
        await send({"type": "websocket.close", "code": WS_TRY_AGAIN_LATER, "reason": reason})
        return
    response = JSONResponse(
        {"detail": refusal.detail},
        status_code=refusal.status_code,
        headers={"Retry-After": str(refusal.retry_after_s)},
    )
    await response(scope, receive, send)
