"""Who may call the endpoint: the trunks' source CIDRs and the inbound digest challenge.

A source outside the allowlist gets 403; with a username configured, an INVITE without
valid digest credentials (RFC 7616 / RFC 2617, MD5 or SHA-256, ``qop=auth``) gets 401 and a
challenge whose nonce is a signed, expiring token bound to the source IP. Credentials are
accepted for one request only: a nonce's (nc, cnonce) seen with another Call-ID or CSeq is
a replay (a captured INVITE sent again as a new call) and is challenged afresh, while the
same INVITE retransmitted passes.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from aiosipua import SipRequest, parse_auth

from integrations.signed_tokens import SignedTokenError, TokenSigner

NONCE_TTL_S = 300
Verdict = Literal["ok", "forbidden", "challenge"]


class TrunkAllowlist:
    """The source networks INVITEs may come from (empty = any).

    Args:
        cidrs: ``"10.0.0.0/8"``, ``"203.0.113.7"``, ... (a bare address is a /32 or /128).

    Raises:
        ValueError: A CIDR that does not parse (the message names it).
    """

    def __init__(self, cidrs: Iterable[str]) -> None:
        nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for cidr in cidrs:
            text = cidr.strip()
            if not text:
                continue
            try:
                nets.append(ipaddress.ip_network(text, strict=False))
            except ValueError as exc:
                raise ValueError(f"not a CIDR: {text!r}") from exc
        self._nets = tuple(nets)

    def allows(self, host: str) -> bool:
        """Whether ``host`` (an IP address) is inside one of the networks."""
        if not self._nets:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self._nets)


def _nonce_signer() -> TokenSigner:
    """Nonces verify only in the process that issued them (a fresh secret per process)."""
    return TokenSigner(secrets.token_hex(32), "sip-digest-nonce", ttl_s=NONCE_TTL_S)


_HASHES = {"md5": hashlib.md5, "sha-256": hashlib.sha256}


@dataclass(frozen=True)
class DigestChallenger:
    """Challenges INVITEs with 401 and checks the credentials of the retried INVITE.

    Parameters:
        username: The one user the trunk authenticates as.
        password: Its password.
        realm: The challenge's realm.
    """

    username: str
    password: str
    realm: str
    _signer: TokenSigner = field(default_factory=lambda: _nonce_signer(), init=False, repr=False)
    _used: OrderedDict[tuple[str, str, str], tuple[str, float]] = field(
        default_factory=lambda: OrderedDict(), init=False, repr=False
    )
    """Credentials accepted so far -> (the request they were for, when they expire)."""

    def challenge(self, source_host: str) -> str:
        """A ``WWW-Authenticate`` value with a fresh nonce for ``source_host``."""
        nonce = self._signer.issue([source_host]).token
        return f'Digest realm="{self.realm}", nonce="{nonce}", algorithm=MD5, qop="auth"'

    def verify(self, request: SipRequest, source_host: str) -> bool:
        """Whether ``request`` carries valid credentials (a nonce we issued to this source)."""
        raw = request.get_header("authorization")
        if not raw:
            return False
        try:
            creds = parse_auth(raw)
        except Exception:  # a malformed header is simply not valid credentials
            return False
        params = creds.params
        if creds.scheme.lower() != "digest" or params.get("username") != self.username:
            return False
        if params.get("realm") != self.realm or params.get("uri") != request.uri:
            return False  # the digest must be over this request's URI
        nonce = params.get("nonce", "")
        try:
            self._signer.verify(nonce, [source_host])
        except SignedTokenError:
            return False
        hasher = _HASHES.get(params.get("algorithm", "MD5").lower())
        if hasher is None:
            return False

        def h(text: str) -> str:
            return hasher(text.encode()).hexdigest()

        ha1 = h(f"{self.username}:{self.realm}:{self.password}")
        ha2 = h(f"{request.method}:{params.get('uri', '')}")
        if params.get("qop", "").lower() == "auth":
            nc, cnonce = params.get("nc", ""), params.get("cnonce", "")
            expected = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        else:
            expected = h(f"{ha1}:{nonce}:{ha2}")
        if not hmac.compare_digest(expected, params.get("response", "")):
            return False
        return self._first_use(
            (nonce, params.get("nc", ""), params.get("cnonce", "")),
            f"{request.call_id} {request.get_header('cseq') or ''}",
        )

    def _first_use(self, credentials: tuple[str, str, str], request_key: str) -> bool:
        """Whether ``credentials`` are new, or were accepted for this same request before."""
        now = time.monotonic()
        while self._used and next(iter(self._used.values()))[1] < now:
            self._used.popitem(last=False)  # expired nonces fail their signature anyway
        seen = self._used.get(credentials)
        if seen is not None:
            return seen[0] == request_key  # a retransmission, else a replay
        self._used[credentials] = (request_key, now + NONCE_TTL_S)
        return True


class TrunkPolicy:
    """The allowlist and (optionally) the digest challenge, in that order.

    Args:
        cidrs: The allowed source networks.
        challenger: The digest check, or None when the trunk authenticates by source only.
    """

    def __init__(self, cidrs: Iterable[str], challenger: DigestChallenger | None) -> None:
        self.allowlist = TrunkAllowlist(cidrs)
        self.challenger = challenger

    def check(self, request: SipRequest, source: tuple[str, int]) -> Verdict:
        """``ok``, ``forbidden`` (403) or ``challenge`` (401 with :meth:`challenge_header`)."""
        if not self.allowlist.allows(source[0]):
            return "forbidden"
        if self.challenger is not None and not self.challenger.verify(request, source[0]):
            return "challenge"
        return "ok"

    def challenge_header(self, source: tuple[str, int]) -> str:
        """The ``WWW-Authenticate`` value for a 401 to ``source``."""
        assert self.challenger is not None
        return self.challenger.challenge(source[0])
