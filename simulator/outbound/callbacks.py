"""Twilio's webhooks for an outbound call, signed as Twilio signs them.

The answer URL, the status callbacks (``initiated``, ``ringing``, ``answered``,
``completed``) and the asynchronous AMD callback are form-encoded requests carrying
``X-Twilio-Signature``: base64 HMAC-SHA1 of the full URL (query string included) followed
by every POST parameter's name and value in sorted order (a GET's parameters are in the
URL). Twilio does not retry a callback that fails: each delivery is recorded, that is all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from twilio.request_validator import RequestValidator

CALLBACK_TIMEOUT_S = 15.0
"""Twilio waits this long for a webhook's answer."""


@dataclass
class CallbackDelivery:
    """One webhook request Twilio made, and how it went.

    Parameters:
        kind: ``answer``, ``status`` or ``amd``.
        url: Where it went (a GET's parameters included).
        method: ``POST`` or ``GET``.
        params: The form (or query) fields sent.
        status: The HTTP status answered, or None when the request failed.
        error: Why it failed (exception name), else None.
        body: The answer's text (TwiML for ``answer``), at most 64 KiB.
        at: When it was sent (``time.monotonic()``).
    """

    kind: str
    url: str
    method: str
    params: dict[str, str]
    status: int | None = None
    error: str | None = None
    body: str = ""
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        """Whether the receiver answered 2xx."""
        return self.status is not None and 200 <= self.status < 300


def timestamp() -> str:
    """Now, as Twilio's callbacks write it (RFC 2822)."""
    return format_datetime(datetime.now(UTC))


class CallbackSender:
    """Signs and sends an account's webhooks; remembers every delivery."""

    def __init__(self, auth_token: str, *, timeout_s: float = CALLBACK_TIMEOUT_S):
        """Sign with ``auth_token`` (the account's)."""
        self._validator = RequestValidator(auth_token)
        self._timeout_s = timeout_s
        self.deliveries: list[CallbackDelivery] = []

    def signed(self, url: str, method: str, params: dict[str, str]) -> tuple[str, dict[str, str]]:
        """The URL to request and the headers, signed for ``params``."""
        if method.upper() == "GET":
            parts = urlsplit(url)
            query = "&".join(q for q in (parts.query, urlencode(params)) if q)
            full = urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
            return full, {"X-Twilio-Signature": self._validator.compute_signature(full, {})}
        return url, {"X-Twilio-Signature": self._validator.compute_signature(url, params)}

    async def send(
        self, kind: str, url: str, params: dict[str, str], method: str = "POST"
    ) -> CallbackDelivery:
        """Deliver one webhook; never raises (a failure is recorded, not retried)."""
        method = "GET" if method.upper() == "GET" else "POST"
        target, headers = self.signed(url, method, params)
        delivery = CallbackDelivery(kind, target, method, dict(params))
        self.deliveries.append(delivery)
        headers["User-Agent"] = "TwilioProxy/1.1"
        try:
            async with httpx.AsyncClient(timeout=self._timeout_s) as client:
                if method == "GET":
                    response = await client.get(target, headers=headers)
                else:
                    response = await client.post(target, data=params, headers=headers)
        except httpx.HTTPError as e:
            delivery.error = type(e).__name__
            return delivery
        delivery.status = response.status_code
        delivery.body = response.text[: 64 * 1024]
        return delivery
