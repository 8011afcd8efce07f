"""Who a request's client is, how logs name it without its address, and what is loopback.

One place for both, used by call admission (``bot/web/admission.py``), the browser call
gate and the operator login throttle (``bot/operator/auth.py``), so a client behind a
trusted proxy is the same client everywhere and reads the same in every log line.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable

from starlette.requests import HTTPConnection

REF_CHARS = 12
"""Hex characters of a client reference in logs (48 bits: enough to tell clients apart)."""


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a listen address) is reachable from this machine only."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class ClientAddresses:
    """Who the client of a request is.

    Its connecting address, or behind trusted proxies the address they forwarded.

    Args:
        trusted_proxies: Addresses or networks (``10.0.0.0/8``) of reverse proxies whose
            ``X-Forwarded-For`` is believed. Empty: the header is ignored.
    """

    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self._trusted = [ipaddress.ip_network(p.strip(), strict=False) for p in trusted_proxies]
        self._salt = secrets.token_bytes(16)

    @classmethod
    def from_setting(cls, value: str) -> ClientAddresses:
        """From ``CALLAGENT_TRUSTED_PROXIES`` (comma-separated)."""
        return cls(p for p in value.split(",") if p.strip())

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)

    def of(self, connection: HTTPConnection) -> str:
        """The client address of a request or WebSocket (``"unknown"`` when there is none)."""
        peer = connection.client.host if connection.client else "unknown"
        if not self._trusted or not self._is_trusted(peer):
            return peer
        forwarded = ",".join(connection.headers.getlist("x-forwarded-for"))
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else peer

    def ref(self, client: str) -> str:
        """A salted hash of a client address for logs (the salt is random per process).

        The same client reads the same in this process's logs; the address cannot be read back.
        """
        return hmac.new(self._salt, client.encode(), hashlib.sha256).hexdigest()[:REF_CHARS]
