"""How the caller's identity (phone number or client id) is stored in call records.

One strategy per choice of ``CALLAGENT_CALLER_ID_STORAGE``:

- :class:`HashedCallerId` (default): salted SHA-256, so calls from one number can
  be counted together without keeping the number;
- :class:`RedactedCallerId`: only the last two digits are kept;
- :class:`PlainCallerId`: stored as given.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod

HASH_CHARS = 24
"""Hex characters of the hash kept (96 bits)."""
KEEP_DIGITS = 2


class CallerIdPolicy(ABC):
    """Turns a caller identity into what is stored."""

    name: str

    @abstractmethod
    def store(self, caller: str | None) -> str | None:
        """The stored form of ``caller`` (None stays None)."""


class HashedCallerId(CallerIdPolicy):
    """``sha256:`` and the first 24 hex characters of SHA-256(salt + normalised id)."""

    name = "hash"

    def __init__(self, salt: str):
        """Hash with ``salt`` (keep it secret and stable, or hashes stop matching)."""
        if not salt:
            raise ValueError("a caller id salt is required for hashing")
        self._salt = salt.encode()

    def store(self, caller: str | None) -> str | None:
        """The salted hash of the caller."""
        if not caller:
            return None
        digest = hashlib.sha256(self._salt + b"\x00" + _normalise(caller).encode()).hexdigest()
        return f"sha256:{digest[:HASH_CHARS]}"


class RedactedCallerId(CallerIdPolicy):
    """Every character but the last two digits masked: ``+1 555 0100`` → ``***00``."""

    name = "redact"

    def store(self, caller: str | None) -> str | None:
        """The caller with all but the last two digits removed."""
        if not caller:
            return None
        digits = re.sub(r"\D", "", caller)
        return "***" + digits[-KEEP_DIGITS:] if digits else "***"


class PlainCallerId(CallerIdPolicy):
    """The caller as given (only where the law and the callers allow it)."""

    name = "plain"

    def store(self, caller: str | None) -> str | None:
        """The caller unchanged."""
        return caller or None


def _normalise(caller: str) -> str:
    """Phone numbers compare by digits (``+1 (555) 010-0`` and ``+15550100`` hash alike)."""
    stripped = caller.strip()
    digits = re.sub(r"\D", "", stripped)
    if digits and re.fullmatch(r"[\d\s()+.\-]+", stripped):
        return "+" + digits
    return stripped
