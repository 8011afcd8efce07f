"""Who may start a browser call: origin, credentials and the call cap for ``POST /api/offer``.

A browser call costs the server a pipeline and its models' time, so on a server that others
can reach, starting one needs a credential. Accepted credentials:

- the operator's: the dashboard session cookie or ``Authorization: Bearer
  <CALLAGENT_OPERATOR_TOKEN>`` (checked through ``OperatorAuth.allowed``), so an operator can
  use the test page at ``/``;
- a **call token**: short-lived (``CALLAGENT_CALL_TOKEN_TTL_SECS``) and single-use. A
  customer's backend mints one with the operator token (``POST /api/call-tokens`` ->
  ``{"token", "expires_at", "expires_in"}``) and hands it to its web page, which sends it with
  the offer as ``"call_token"`` (the built-in page passes ``?call_token=`` from its URL).

A call token is bound to a caller: the backend mints it with ``{"caller": "<CRM id>"}`` (or
none), and an offer using it must send exactly that ``caller`` (else 403), since the caller
selects the CRM record the agent greets and reads from; the operator's credentials, and a
loopback request without any, still take the caller the offer sends.

Tokens are ``v2.<nonce>.<caller tag>.<expiry>.<HMAC-SHA256>``
(:mod:`integrations.signed_tokens`), keyed by a key derived from the operator token, so every
process sharing the settings accepts them; a used one's nonce is kept in the deployment's
shared state (``Runtime.shared``, ``callagent:calltoken:<nonce>`` until the token expires), so
a token is used once across every process.

Without a credential a call starts only on loopback: the server listens on 127.0.0.1 / ::1 /
localhost (``CALLAGENT_HOST``), ``CALLAGENT_PUBLIC_URL`` (if set) is a loopback URL, and the
request itself comes from a loopback address, names a loopback host (no DNS rebinding) and
carries no proxy headers. That is the README's ``http://127.0.0.1:7860/`` on a developer's
machine.

Every offer must also come from an allowed page: its ``Origin`` (browsers always send one on
a POST) must be the server's own (``CALLAGENT_PUBLIC_URL``, else the request's scheme and
host) or one in ``CALLAGENT_ALLOWED_ORIGINS``. A request without ``Origin`` is not from a
browser page and needs its credential like any other. Then a slot under the call cap is taken
(``bot/web/admission.py``).
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Request

from bot.client_address import ClientAddresses, is_loopback_host
from bot.operator.auth import TOKEN_REQUIRED, OperatorAuth
from bot.web.admission import Admission, CallSlot, RefusalReason
from integrations.shared_state.base import SharedState
from integrations.shared_state.memory import MemorySharedState
from integrations.signed_tokens import SignedTokenError, TokenFailure, TokenSigner
from transports.webrtc_signalling import MAX_PARAM_VALUE_CHARS

ROUTE = "webrtc"
PROXY_HEADERS = ("x-forwarded-for", "x-forwarded-host", "forwarded", "x-real-ip")
TOKEN_VERSION = "v2"
TOKEN_PURPOSE = "callagent/call-token/v2"
USED_KEY = "callagent:calltoken:"


class CallTokenError(ValueError):
    """A call token that cannot be used; the message says why (no token content)."""


class CallTokenCallerError(CallTokenError):
    """A valid call token, minted for another caller than the offer's (or for none)."""


@dataclass(frozen=True)
class CallToken:
    """A minted call token and when it stops being accepted.

    Parameters:
        token: The opaque string the page sends as ``call_token``.
        expires_at: Unix time after which it is refused.
    """

    token: str
    expires_at: int


class CallTokens:
    """Mints and checks single-use, caller-bound browser call tokens.

    A token is ``v2.<nonce>.<caller tag>.<expiry>.<mac>``: the expiry and MAC are an
    :class:`integrations.signed_tokens.TokenSigner`'s over the nonce and the caller tag (a
    keyed fingerprint of the caller it was minted for, ``""`` for none, so the token never
    shows the caller id). This class adds the nonce, the caller binding and the ledger of
    nonces used.

    Args:
        operator_token: ``CALLAGENT_OPERATOR_TOKEN``, the root of the signing key (empty:
            nothing can be minted or accepted).
        ttl_s: How long a token is accepted.
        shared: Where used nonces are kept (default: this process's memory).
        clock: ``time.time`` (tests pass their own).
    """

    def __init__(
        self,
        operator_token: str,
        ttl_s: int,
        *,
        shared: SharedState | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._signer = (
            TokenSigner(operator_token, TOKEN_PURPOSE, ttl_s=ttl_s, clock=clock)
            if operator_token
            else None
        )
        self.ttl_s = ttl_s
        self._clock = clock
        self._shared = shared if shared is not None else MemorySharedState()

    @property
    def enabled(self) -> bool:
        """Whether tokens can be minted (an operator token is set)."""
        return self._signer is not None

    def mint(self, caller: str = "") -> CallToken:
        """A new token for a call as ``caller`` (``""``: none), accepted once within ``ttl_s``."""
        if self._signer is None:
            raise CallTokenError("call tokens need CALLAGENT_OPERATOR_TOKEN")
        nonce = secrets.token_urlsafe(16)
        tag = self._signer.fingerprint(caller)
        signed = self._signer.issue([nonce, tag])
        return CallToken(f"{TOKEN_VERSION}.{nonce}.{tag}.{signed.token}", signed.expires_at)

    async def _verify(self, token: str, caller: str) -> tuple[str, int]:
        """The token's nonce and expiry, if it is valid, for ``caller`` and unused."""
        if self._signer is None:
            raise CallTokenError("call tokens are not enabled (CALLAGENT_OPERATOR_TOKEN)")
        version, nonce, tag, signed = (token.split(".", 3) + ["", "", ""])[:4]
        if version != TOKEN_VERSION or not nonce or not tag:
            raise CallTokenError(_FAILURES["malformed"])
        try:
            expires_at = self._signer.verify(signed, [nonce, tag])
        except SignedTokenError as e:
            raise CallTokenError(_FAILURES[e.reason]) from None
        if not hmac.compare_digest(tag, self._signer.fingerprint(caller)):
            raise CallTokenCallerError(
                "the call token was minted for another caller: send the 'caller' it was "
                "minted for (none if it was minted without one)"
            )
        if await self._shared.get(USED_KEY + nonce) is not None:
            raise CallTokenError(_USED)
        return nonce, expires_at

    async def check(self, token: str, caller: str = "") -> tuple[str, int]:
        """Check a token for a call as ``caller`` without using it up.

        Returns:
            Its nonce and expiry, for :meth:`use`.

        Raises:
            CallTokenCallerError: minted for another caller (or for none).
            CallTokenError: malformed, forged, expired or already used.
        """
        return await self._verify(token, caller)

    async def use(self, nonce: str, expires_at: int) -> None:
        """Use up the token :meth:`check` passed (``nonce``, ``expires_at``: what it returned).

        Raises:
            CallTokenError: another offer (on any process) used it since the check.
        """
        ttl_s = max(1.0, expires_at - self._clock() + 1)  # kept until the token expires
        if not await self._shared.put(USED_KEY + nonce, "1", ttl_s=ttl_s, only_if_absent=True):
            raise CallTokenError(_USED)


_USED = "the call token was already used: mint one per call"


_FAILURES: dict[TokenFailure, str] = {
    "malformed": "the call token is malformed",
    "mismatch": "the call token is not valid",
    "expired": "the call token has expired: mint a new one",
}


class CallerAccess(Protocol):
    """Whether an offer needs a credential (the server's exposure)."""

    def needs_credentials(self, request: Request) -> bool:
        """Whether this request must carry an operator credential or a call token."""
        ...


class CredentialsRequired:
    """Every offer needs a credential (a server others can reach)."""

    def needs_credentials(self, request: Request) -> bool:
        """Always."""
        return True


class OpenOnLoopback:
    """A server on loopback: a plain local request needs no credential.

    A request from this machine to a loopback host name needs none; anything else (a
    proxy's forwarded request, a rebinding DNS name) does.
    """

    def needs_credentials(self, request: Request) -> bool:
        """Whether the request is not a plain local one."""
        if any(h in request.headers for h in PROXY_HEADERS):
            return True
        peer = request.client.host if request.client else ""
        host = urlsplit(f"//{request.headers.get('host', '')}").hostname or ""
        return not (is_loopback_host(peer) and is_loopback_host(host))


def caller_access(host: str, public_url: str) -> CallerAccess:
    """The access policy for a server listening on ``host`` and reached at ``public_url``.

    Args:
        host: ``CALLAGENT_HOST`` (what the server binds).
        public_url: ``CALLAGENT_PUBLIC_URL`` (empty: unknown).
    """
    public_host = (urlsplit(public_url).hostname or "") if public_url else "localhost"
    if is_loopback_host(host) and is_loopback_host(public_host):
        return OpenOnLoopback()
    return CredentialsRequired()


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower case, default ports dropped ("" if none)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        return ""
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


class BrowserCallGate:
    """The server's :class:`transports.webrtc.OfferGate`: origin, credentials, call cap.

    Args:
        access: Whether a request needs a credential (:func:`caller_access`).
        operator: The operator's credentials (only ``allowed(request)`` is used).
        tokens: The call tokens.
        admission: The call cap (and refusal counts).
        addresses: How the client address is read.
        own_origin: The server's own public base URL for a request.
        allowed_origins: Other page origins allowed to post offers.
    """

    def __init__(
        self,
        *,
        access: CallerAccess,
        operator: OperatorAuth,
        tokens: CallTokens,
        admission: Admission,
        addresses: ClientAddresses,
        own_origin: Callable[[Request], str],
        allowed_origins: Iterable[str] = (),
    ) -> None:
        self._access = access
        self._operator = operator
        self._tokens = tokens
        self._admission = admission
        self._addresses = addresses
        self._own_origin = own_origin
        self._allowed = {o for o in (origin_of(a) for a in allowed_origins) if o}

    def _refuse(self, client: str, reason: RefusalReason, status: int, detail: str) -> None:
        self._admission.refused(ROUTE, reason, client)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        raise HTTPException(status, detail, headers=headers)

    def _check_origin(self, request: Request, client: str) -> None:
        origin = request.headers.get("origin")
        if origin is None:
            return  # not sent by a browser page: no cross-site request to stop
        allowed = self._allowed | {origin_of(self._own_origin(request))}
        if origin_of(origin) not in allowed:
            self._refuse(
                client,
                "origin",
                403,
                "this page's origin may not start calls: serve it from the agent's own URL "
                "or list it in CALLAGENT_ALLOWED_ORIGINS",
            )

    async def allow(self, request: Request) -> None:
        """Renegotiation and trickled candidates of an existing call: the origin check."""
        self._check_origin(request, self._addresses.of(request))

    async def admit(
        self, request: Request, body: Mapping[str, Any], params: Mapping[str, str]
    ) -> CallSlot:
        """Admit a new browser call, returning its slot (raises ``HTTPException`` to refuse).

        A call token admits only the caller it was minted for (``params["caller"]``, what
        the call gets).
        """
        client = self._addresses.of(request)
        caller = params.get("caller", "")
        self._check_origin(request, client)
        token = body.get("call_token")
        checked: tuple[str, int] | None = None
        if self._access.needs_credentials(request) and not await self._operator.allowed(request):
            if not self._tokens.enabled:
                self._refuse(
                    client,
                    "credentials",
                    403,
                    "browser calls on a server that is not on loopback need a credential: set "
                    "CALLAGENT_OPERATOR_TOKEN and mint call tokens at POST /api/call-tokens",
                )
            if not isinstance(token, str) or not token:
                self._refuse(
                    client,
                    "credentials",
                    401,
                    "a call token is required: send 'call_token' (minted at POST "
                    "/api/call-tokens) or the operator's credentials",
                )
            try:
                checked = await self._tokens.check(str(token), caller)
            except CallTokenCallerError as e:
                self._refuse(client, "credentials", 403, str(e))
            except CallTokenError as e:
                self._refuse(client, "credentials", 401, str(e))
        slot = self._admission.acquire(ROUTE, client)  # over the cap: the token stays unused
        if checked is not None:
            try:  # the one atomic step: of two offers racing with a token, one uses it
                await self._tokens.use(*checked)
            except CallTokenError as e:
                slot.release()
                self._refuse(client, "credentials", 401, str(e))
        return slot


def create_call_tokens_router(tokens: CallTokens, operator: OperatorAuth) -> APIRouter:
    """``POST /api/call-tokens`` (operator credentials): a single-use browser call token.

    The optional JSON body ``{"caller": "<id>"}`` binds the token to that caller.
    """
    router = APIRouter()

    @router.post("/api/call-tokens")
    async def mint_call_token(request: Request) -> dict[str, Any]:
        """Mint a call token for a customer's page: ``{token, expires_at, expires_in}``."""
        if not tokens.enabled:
            raise HTTPException(
                403, "call tokens need CALLAGENT_OPERATOR_TOKEN (16+ characters) in .env"
            )
        if not await operator.allowed(request):
            raise HTTPException(401, TOKEN_REQUIRED, headers={"WWW-Authenticate": "Bearer"})
        minted = tokens.mint(await _caller_to_bind(request))
        return {
            "token": minted.token,
            "expires_at": datetime.fromtimestamp(minted.expires_at, UTC).isoformat(),
            "expires_in": tokens.ttl_s,
        }

    return router


async def _caller_to_bind(request: Request) -> str:
    """The ``caller`` of a mint request's optional JSON body (``""`` without one)."""
    raw = await request.body()
    if not raw.strip():
        return ""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise HTTPException(400, 'the body must be a JSON object: {"caller": "<id>"} or empty')
    caller = cast(dict[str, Any], body).get("caller", "")
    if not isinstance(caller, str) or len(caller) > MAX_PARAM_VALUE_CHARS:
        raise HTTPException(
            400, f"'caller' must be a string of at most {MAX_PARAM_VALUE_CHARS} characters"
        )
    return caller
