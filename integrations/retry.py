"""The one retry policy for requests to the outside world (CRMs, screen pop, Twilio REST).

Built on ``tenacity``. A request is tried up to ``attempts`` times; between attempts the
policy waits an exponential back-off (``backoff_s``, doubling) with random jitter, capped at
``max_backoff_s``. Only transient failures are retried:

- timeouts and connection errors (httpx transport errors, urllib3 errors, ``TimeoutError``,
  ``ConnectionError``);
- answers, or errors carrying an HTTP status, of 429 or 500/502/503/504.

Every other answer, including every other 4xx, is final. With ``honour_retry_after`` a
``Retry-After: <seconds>`` header lengthens the wait, still within the cap. Each caller keeps
its own attempt count, per-attempt timeout and first back-off as the policy's parameters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import urllib3.exceptions
from loguru import logger
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses worth another attempt: rate limited, or the server failing for now."""
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    httpx.TransportError,  # timeouts, connection and protocol errors
    urllib3.exceptions.HTTPError,  # the same, from SDKs built on urllib3 (HubSpot)
    TimeoutError,
    ConnectionError,
)
"""Errors that mean the request may not have been answered at all."""
JITTER = 0.5
"""Up to this fraction of the first back-off is added to every wait, at random."""
T = TypeVar("T")


def status_of(outcome: object) -> int | None:
    """The HTTP status an answer or error carries (``status_code`` or ``status``), if any."""
    if isinstance(outcome, httpx.Response):
        return outcome.status_code
    if isinstance(outcome, httpx.HTTPStatusError):
        return outcome.response.status_code
    if isinstance(outcome, BaseException):
        status = getattr(outcome, "status", None)  # SDK errors (HubSpot ApiException)
        return status if isinstance(status, int) else None
    return None


def is_transient_error(error: BaseException) -> bool:
    """Whether an error is worth another attempt (timeout, connection, 429/5xx).

    An error that says so itself (a ``retryable`` attribute, as our adapters' errors carry)
    is believed.
    """
    retryable = getattr(error, "retryable", None)
    if isinstance(retryable, bool):
        return retryable
    return isinstance(error, TRANSIENT_ERRORS) or status_of(error) in RETRY_STATUSES


def is_transient_answer(answer: object) -> bool:
    """Whether an answer (an HTTP response) is worth another attempt (429/5xx)."""
    return status_of(answer) in RETRY_STATUSES


def retry_after_s(outcome: object) -> float | None:
    """The ``Retry-After`` seconds an answer or error carries (None when absent or a date)."""
    headers = outcome.headers if isinstance(outcome, httpx.Response) else None
    if headers is None and isinstance(outcome, BaseException):
        headers = getattr(outcome, "headers", None)
    if not isinstance(headers, Mapping):  # httpx.Headers, urllib3's HTTPHeaderDict, dict
        return None
    value = headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value else None
    except (TypeError, ValueError):
        return None


def describe(outcome: object) -> str:
    """A failed attempt in a few words (``HTTP 503``, ``ReadTimeout``); never request data."""
    status = status_of(outcome)
    if status is not None:
        return f"HTTP {status}"
    return type(outcome).__name__


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one kind of request is retried.

    Parameters:
        attempts: Total attempts, the first included (1 = no retry).
        timeout_s: Per-attempt timeout (the caller hands it to its HTTP client).
        backoff_s: The first wait; it doubles with each retry.
        max_backoff_s: No wait is longer than this (``Retry-After`` included).
        honour_retry_after: Wait at least what a ``Retry-After`` header asks (up to the cap).
    """

    attempts: int = 3
    timeout_s: float = 2.0
    backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    honour_retry_after: bool = False

    def wait_s(self, state: RetryCallState) -> float:
        """How long to wait after the failed attempt ``state`` describes."""
        backoff = wait_exponential(multiplier=self.backoff_s, max=self.max_backoff_s)
        jitter = wait_random(0, self.backoff_s * JITTER)
        delay = backoff(state) + jitter(state)
        if self.honour_retry_after and state.outcome is not None:
            outcome = state.outcome
            asked = retry_after_s(outcome.exception() if outcome.failed else outcome.result())
            if asked is not None:
                delay = max(delay, asked)
        return min(delay, self.max_backoff_s)

    def delay_after(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row, without jitter.

        For a link that reconnects for as long as it runs (``attempts`` does not apply).
        """
        return min(self.backoff_s * 2 ** max(0, failures - 1), self.max_backoff_s)

    async def call(self, attempt: Callable[[int], Awaitable[T]], *, what: str) -> T:
        """Run ``attempt(1)``, ``attempt(2)``, ... until an answer is final or attempts run out.

        Args:
            attempt: Makes one request; it is given the attempt's number (from 1).
            what: Names the request in the retry log line (no caller data).

        Returns:
            The first final answer, or the last answer when every attempt was transient.

        Raises:
            BaseException: The last attempt's error when it raised (transient or not).
        """
        number = 0

        async def once() -> T:
            nonlocal number
            number += 1
            return await attempt(number)

        def log_retry(state: RetryCallState) -> None:
            outcome = state.outcome
            if outcome is None:
                return
            problem = describe(outcome.exception() if outcome.failed else outcome.result())
            wait = state.next_action.sleep if state.next_action else 0.0
            logger.info(
                f"{what}: attempt {state.attempt_number} failed ({problem}); "
                f"retrying in {wait:.2f} s"
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(1, self.attempts)),
            wait=self.wait_s,
            retry=retry_if_exception(is_transient_error) | retry_if_result(is_transient_answer),
            before_sleep=log_retry,
            retry_error_callback=_last_outcome,
        )
        return await retrying(once)


def _last_outcome(state: RetryCallState) -> Any:
    """Out of attempts: the last answer, or the last error raised again."""
    assert state.outcome is not None
    return state.outcome.result()
