"""Screen-pop webhook: the hand-off summary POSTed to the human agent's desktop, signed.

Each delivery is a JSON POST with:

- ``X-Callagent-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``
  (verify with :func:`verify_signature`; reject old timestamps to stop replays);
- ``Idempotency-Key``: the same on every retry of one hand-off, so the desktop shows it once;
- ``X-Callagent-Attempt``: 1, 2, ...

Connection errors, timeouts, 429 and 5xx are retried by :class:`integrations.retry.RetryPolicy`
(exponential back-off with jitter, ``Retry-After`` honoured up to the 2 s cap); other 4xx
answers are final.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from integrations.retry import RetryPolicy

SIGNATURE_HEADER = "X-Callagent-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
ATTEMPT_HEADER = "X-Callagent-Attempt"
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
            backoff_s: First back-off; doubles each retry (with jitter, capped at 2 s).
            client: An httpx client to reuse (tests); one is made per delivery otherwise.
        """
        if not secret:
            raise ValueError("a screen-pop webhook needs an HMAC secret")
        self.url = url
        self._secret = secret
        self._retry = RetryPolicy(
            attempts=max(1, attempts),
            timeout_s=timeout_s,
            backoff_s=backoff_s,
            max_backoff_s=MAX_BACKOFF_S,
            honour_retry_after=True,
        )
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
        attempts = 0

        async def attempt(number: int) -> httpx.Response:
            nonlocal attempts
            attempts = number
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(self._secret, body, int(time.time())),
                IDEMPOTENCY_HEADER: key,
                ATTEMPT_HEADER: str(number),
            }
            return await client.post(
                self.url, content=body, headers=headers, timeout=self._retry.timeout_s
            )

        try:
            response = await self._retry.call(attempt, what=f"screen pop {key[:12]}")
        except httpx.HTTPError as e:
            return DeliveryResult(False, attempts, None, _ms(started), type(e).__name__)
        status = response.status_code
        if 200 <= status < 300:
            return DeliveryResult(True, attempts, status, _ms(started))
        return DeliveryResult(False, attempts, status, _ms(started), f"HTTP {status}")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
