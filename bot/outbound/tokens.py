"""Signed attempt tokens: the attempt id in Twilio's URLs and the browser's ring link.

An **attempt token** (``<attempt id>.<expiry>.<mac>``) rides in the query of the answer URL and
the status and AMD callback URLs of an outbound Twilio call. Twilio signs the whole URL, so
with signatures checked the token proves the request is about that attempt; on loopback
without an auth token it still binds the URL to an attempt this server made.

A **ring token** (``ring.<attempt id>.<expiry>.<mac>``, another purpose) is the browser
page's single-use "incoming call": answering or declining uses it up (see
:mod:`bot.outbound.ring`). Both come from :class:`integrations.signed_tokens.TokenSigner`.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable

from integrations.signed_tokens import SignedTokenError, TokenSigner

ATTEMPT_TOKEN_TTL_S = 6 * 3600.0
"""Longer than the ringing, the longest call (Twilio's 4 h default) and its last callback."""
_ATTEMPT_ID = re.compile(r"^at_[0-9a-f]{1,40}$")


class AttemptTokenError(ValueError):
    """A token that does not name an attempt of ours (the message holds no token)."""


class AttemptTokens:
    """Issues and verifies the tokens that carry an attempt id.

    Args:
        secret: The signing secret (the Twilio auth token, else the operator token, else a
            random one for this process).
        purpose: The token kind's label (keeps attempt and ring tokens apart).
        prefix: A fixed first part (``ring``) or ``""``.
        ttl_s: How long a token verifies.
        clock: Wall-clock seconds.
    """

    def __init__(
        self,
        secret: str,
        purpose: str = "callagent/outbound-attempt/v1",
        *,
        prefix: str = "",
        ttl_s: float = ATTEMPT_TOKEN_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._signer = TokenSigner(
            secret or secrets.token_hex(32), purpose, ttl_s=ttl_s, clock=clock
        )
        self._prefix = f"{prefix}." if prefix else ""

    def issue(self, attempt_id: str) -> str:
        """The token for ``attempt_id``."""
        return f"{self._prefix}{attempt_id}.{self._signer.issue([attempt_id]).token}"

    def verify(self, token: str) -> str:
        """The attempt id a token was issued for.

        Raises:
            AttemptTokenError: malformed, forged, or expired.
        """
        if not token.startswith(self._prefix):
            raise AttemptTokenError("malformed attempt token")
        attempt_id, _, signed = token[len(self._prefix) :].partition(".")
        if not _ATTEMPT_ID.match(attempt_id):
            raise AttemptTokenError("malformed attempt token")
        try:
            self._signer.verify(signed, [attempt_id])
        except SignedTokenError as e:
            raise AttemptTokenError(f"attempt token: {e}") from None
        return attempt_id
