"""Campaign result webhooks: each ended attempt POSTed, signed, to the campaign's URL.

One delivery is one request; the job queue redelivers a failed one with back-off
(``bot.outbound.runner``). Each POST carries, as the screen-pop webhook does:

- ``X-Callagent-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``
  (check it with :func:`integrations.screen_pop.verify_signature`);
- ``Idempotency-Key``: the attempt id, the same on every redelivery;
- ``X-Callagent-Attempt``: which delivery this is (1, 2, ...).

The body holds ids, the outcome and where the contact stands, never the phone number
or the contact's variables (the receiver has them under the contact id).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import httpx

from integrations.retry import is_transient_answer
from integrations.screen_pop import ATTEMPT_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign

EVENT = "attempt.finished"
TIMEOUT_S = 10.0


class DeliveryFailed(Exception):
    """A delivery worth trying again later (network error, 429, 5xx); no payload data."""


def result_payload(attempt: Mapping[str, Any], contact: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body for one ended attempt and where its contact now stands."""
    keep = (
        "id",
        "campaign_id",
        "contact_id",
        "number",
        "disposition",
        "answered_by",
        "error_code",
        "dialed_at",
        "answered_at",
        "ended_at",
    )
    body: dict[str, Any] = {"event": EVENT}
    body["attempt"] = {k: attempt.get(k) for k in keep}
    body["contact"] = dict(contact)
    return body


def deliver(
    url: str,
    secret: str,
    payload: Mapping[str, Any],
    *,
    idempotency_key: str,
    delivery: int = 1,
    client: httpx.Client | None = None,
) -> int:
    """POST ``payload`` once, signed. Returns the HTTP status of a final answer.

    Raises:
        DeliveryFailed: Network error, timeout, 429 or 5xx: deliver again later.
    """
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body, int(time.time())),
        IDEMPOTENCY_HEADER: idempotency_key,
        ATTEMPT_HEADER: str(delivery),
    }
    try:
        if client is not None:
            response = client.post(url, content=body, headers=headers, timeout=TIMEOUT_S)
        else:
            with httpx.Client() as own:
                response = own.post(url, content=body, headers=headers, timeout=TIMEOUT_S)
    except httpx.HTTPError as e:
        raise DeliveryFailed(type(e).__name__) from None
    if is_transient_answer(response):
        raise DeliveryFailed(f"HTTP {response.status_code}")
    return response.status_code
