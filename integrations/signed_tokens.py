"""Expiring HMAC-signed tokens over claims: the one token signer of the project.

A :class:`TokenSigner` is keyed by a secret and a purpose label (the key is
HMAC-SHA256(secret, label), so a token issued for one purpose never verifies for another, and
every process sharing the secret agrees). It issues ``<expires>.<mac>``: the Unix expiry and
an HMAC-SHA256 (base64url, unpadded) over the expiry and the claims, encoded as a compact
JSON list so no two claim lists sign the same bytes. The claims are not in the token: the
verifier supplies the ones it expects, so a token states nothing it binds (e.g. a caller id).

Verification compares in constant time and raises :class:`SignedTokenError` whose ``reason``
says which check failed (malformed, not matching, expired); messages hold no token content.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

Claim = str | int
TokenFailure = Literal["malformed", "mismatch", "expired"]

_MESSAGES: dict[TokenFailure, str] = {
    "malformed": "the token is malformed",
    "mismatch": "the token does not match (forged, another key, or other claims)",
    "expired": "the token has expired",
}


class SignedTokenError(ValueError):
    """A token that does not verify; ``reason`` says which check failed.

    Parameters:
        reason: ``"malformed"``, ``"mismatch"`` (forged, another key or other claims) or
            ``"expired"``.
    """

    def __init__(self, reason: TokenFailure) -> None:
        super().__init__(_MESSAGES[reason])
        self.reason: TokenFailure = reason


@dataclass(frozen=True)
class SignedToken:
    """An issued token and when it stops verifying.

    Parameters:
        token: ``<expires>.<mac>``.
        expires_at: Unix time (seconds) from which it is refused.
    """

    token: str
    expires_at: int


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class TokenSigner:
    """Issues and verifies expiring tokens for one purpose.

    Args:
        secret: The shared secret (e.g. an operator or auth token); must not be empty.
        purpose: A fixed label naming the token's use and version (separates keys).
        ttl_s: How long an issued token verifies.
        clock: Wall-clock seconds (tokens may be verified by another process).
    """

    def __init__(
        self,
        secret: str,
        purpose: str,
        *,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError(f"tokens for {purpose!r} need a secret")
        self._key = hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()
        self.ttl_s = ttl_s
        self._clock = clock

    def issue(self, claims: Sequence[Claim]) -> SignedToken:
        """A token over ``claims``, verifying for ``ttl_s`` from now."""
        expires_at = int(self._clock() + self.ttl_s)
        return SignedToken(f"{expires_at}.{self._mac(expires_at, claims)}", expires_at)

    def verify(self, token: str, claims: Sequence[Claim]) -> int:
        """Check ``token`` against the ``claims`` it must have been issued over.

        Returns:
            Its expiry (Unix seconds).

        Raises:
            SignedTokenError: malformed, not matching (forged, another key or other claims),
                or expired, checked in that order.
        """
        expires_text, _, mac = token.partition(".")
        if not (expires_text.isascii() and expires_text.isdigit()) or not mac:
            raise SignedTokenError("malformed")
        expires_at = int(expires_text)
        if not hmac.compare_digest(self._mac(expires_at, claims).encode(), mac.encode()):
            raise SignedTokenError("mismatch")
        if self._clock() >= expires_at:
            raise SignedTokenError("expired")
        return expires_at

    def fingerprint(self, value: str) -> str:
        """A keyed digest of ``value`` (128 bits, base64url): binds a value without revealing it.

        Carried in a token (and signed as a claim), it lets the verifier tell "valid, but for
        another value" from "forged".
        """
        message = json.dumps(["fingerprint", value], separators=(",", ":"), ensure_ascii=True)
        return _b64(hmac.digest(self._key, message.encode(), "sha256")[:16])

    def _mac(self, expires_at: int, claims: Sequence[Claim]) -> str:
        message = json.dumps([expires_at, *claims], separators=(",", ":"), ensure_ascii=True)
        return _b64(hmac.digest(self._key, message.encode(), "sha256"))
