"""Screen-pop webhook: the hand-off summary POSTed to the human agent's desktop, signed.

Each delivery is a JSON POST with:

- ``X-Callagent-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``
  (verify with :func:`verify_signature`; reject old timestamps to stop replays);
- ``Idempotency-Key``: the same on every retry of one hand-off, so the desktop shows it once;
- ``X-Callagent-Attempt``: 1, 2, ...

Connection errors, timeouts, 408/425/429 and 5xx are retried with exponential back-off
(``Retry-After`` honoured up to the back-off cap); other 4xx answers are final.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from loguru import logger

SIGNATURE_HEADER = "X-Callagent-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
ATTEMPT_HEADER = "X-Callagent-Attempt"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 2.0


@dataclass(frozen=True)
class DeliveryResult:
    """How a screen-pop delivery went.

    Parameters:
        delivered: A 2xx answer was received.
        attempts: Requests made.
        status: The last HTTP status (None after a network error).
        elapsed_ms: Time from the first attempt to the result.
        error: Why it failed (no payload data).
    """

    delivered: bool
    attempts: int
    status: int | None
    elapsed_ms: float
    error: str = ""


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str, body: bytes, header: str, *, tolerance_s: float = 300, now: float | None = None
) -> bool:
    """Check a signature header (for receivers, and the tests)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


class ScreenPopClient:
    """Delivers hand-off summaries to one webhook URL."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout_s: float = 2.0,
        attempts: int = 3,
        backoff_s: float = 0.25,
        client: httpx.AsyncClient | None = None,
    ):
        """Configure the webhook.

        Args:
            url: Where to POST.
            secret: The HMAC key shared with the receiver.
            timeout_s: Per-attempt timeout.
            attempts: Total attempts (first try included).
            backoff_s: First back-off; doubles each retry (capped at 2 s).
            client: An httpx client to reuse (tests); one is made per delivery otherwise.
        """
        if not secret:
            raise ValueError("a screen-pop webhook needs an HMAC secret")
        self.url = url
        self._secret = secret
        self._timeout_s = timeout_s
        self._attempts = max(1, attempts)
        self._backoff_s = backoff_s
        self._client = client

    async def deliver(self, payload: Mapping[str, Any], idempotency_key: str) -> DeliveryResult:
        """POST ``payload`` (signed), retrying; never raises."""
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        started = time.perf_counter()
        if self._client is not None:
            return await self._deliver(self._client, body, idempotency_key, started)
        async with httpx.AsyncClient() as client:
            return await self._deliver(client, body, idempotency_key, started)

    async def _deliver(
        self, client: httpx.AsyncClient, body: bytes, key: str, started: float
    ) -> DeliveryResult:
        status: int | None = None
        error = ""
        for attempt in range(1, self._attempts + 1):
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(self._secret, body, int(time.time())),
                IDEMPOTENCY_HEADER: key,
                ATTEMPT_HEADER: str(attempt),
            }
            retry_after: float | None = None
            try:
                response = await client.post(
                    self.url, content=body, headers=headers, timeout=self._timeout_s
                )
                status = response.status_code
                if 200 <= status < 300:
                    return DeliveryResult(True, attempt, status, _ms(started))
                error = f"HTTP {status}"
                if status not in RETRY_STATUSES:
                    break
                retry_after = _retry_after(response.headers.get("Retry-After"))
            except httpx.HTTPError as e:
                status = None
                error = type(e).__name__
            if attempt < self._attempts:
                delay = min(self._backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
                if retry_after is not None:
                    delay = min(max(delay, retry_after), MAX_BACKOFF_S)
                logger.info(f"screen pop {key[:12]}: attempt {attempt} failed ({error}); retrying")
                await asyncio.sleep(delay)
        return DeliveryResult(False, attempt, status, _ms(started), error)


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
