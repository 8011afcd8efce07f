"""Operator access: a bearer token, or a session cookie from the dashboard's login.

``CALLAGENT_OPERATOR_TOKEN`` guards ``/api/calls``, ``/dashboard`` and the API docs. API
clients send ``Authorization: Bearer <token>``; the dashboard's login form exchanges the
token for a session: a random id (``bot/operator/sessions.py``) in an HttpOnly,
SameSite=Strict cookie (Secure when the public URL is https), that expires when idle and
after a fixed lifetime, and that logout revokes.

Without the token setting a server listening on loopback only (``CALLAGENT_HOST``
127.0.0.1, ::1 or localhost) prints a one-time login link at start-up instead; any
other server answers 403 naming the setting: records are never open by default.

Wrong credentials (bearer token, login token, login link) are counted per client
address (``bot/operator/throttle.py``): after 5 in a minute the client gets 429 with
``Retry-After`` and is locked out, exponentially longer each time. Each failure is
logged with a keyed hash of the client address, never what was presented.

Sessions, login links and failure counts live in the deployment's shared state
(``Runtime.shared``), so every server process agrees on them.
"""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass

from fastapi import HTTPException, Request, Response
from loguru import logger

from bot.client_address import ClientAddresses, is_loopback_host
from bot.operator.sessions import LoginLinks, OperatorSessions
from bot.operator.throttle import FailureThrottle
from bot.settings import Settings
from integrations.shared_state.base import SharedState
from integrations.shared_state.memory import MemorySharedState

COOKIE = "callagent_operator"
NOT_CONFIGURED = (
    "Call records are closed: set CALLAGENT_OPERATOR_TOKEN (16+ characters) in .env "
    "to open /api/calls and /dashboard (a server listening on 127.0.0.1 only prints a "
    "one-time login link at start-up instead)."
)
TOKEN_REQUIRED = "Operator token required: send 'Authorization: Bearer <CALLAGENT_OPERATOR_TOKEN>'."
LINK_HINT = (
    "Open the one-time login link printed in the server's output "
    "(http://.../dashboard/login?token=...)."
)
_STATE = "operator_access"


@dataclass(frozen=True)
class Access:
    """What a request's credentials get it.

    Parameters:
        granted: The request is an operator's.
        retry_after_s: Above 0: the client is locked out for this long (429).
    """

    granted: bool
    retry_after_s: int = 0


class OperatorAuth:
    """Checks requests against the operator token and the live sessions."""

    def __init__(
        self,
        token: str,
        *,
        shared: SharedState | None = None,
        sessions: OperatorSessions | None = None,
        throttle: FailureThrottle | None = None,
        login_links: LoginLinks | None = None,
        secure_cookie: bool = False,
        addresses: ClientAddresses | None = None,
    ):
        """Guard with ``token`` (empty and no ``login_links``: every request gets 403).

        Args:
            token: The operator token (``CALLAGENT_OPERATOR_TOKEN``).
            shared: Where the default session store and throttle keep their state
                (default: this process's memory).
            sessions: The session store (default: 12 h lifetime, 30 min idle).
            throttle: Failed attempts per client (default: 5 a minute, then lock-out).
            login_links: One-time login links (loopback servers without a token).
            secure_cookie: Mark the session cookie Secure (the public URL is https).
            addresses: Who a request's client is (behind ``CALLAGENT_TRUSTED_PROXIES``) and
                how logs name it; the server passes the one its call admission uses.
        """
        self._token = token
        shared = shared if shared is not None else MemorySharedState()
        self.sessions = sessions or OperatorSessions(shared, absolute_s=12 * 3600, idle_s=30 * 60)
        self.throttle = throttle or FailureThrottle(shared, secret=token)
        self.login_links = login_links
        self._secure_cookie = secure_cookie
        self._addresses = addresses if addresses is not None else ClientAddresses()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        addresses: ClientAddresses | None = None,
        shared: SharedState | None = None,
    ) -> OperatorAuth:
        """The server's operator auth: token, session lifetimes, login links on loopback.

        ``shared`` is the process's ``Runtime.shared`` (default: this process's memory).
        """
        shared = shared if shared is not None else MemorySharedState()
        links = None
        if not settings.operator_token and is_loopback_host(settings.host):
            host = settings.host if ":" not in settings.host else f"[{settings.host}]"
            links = LoginLinks(shared, f"http://{host}:{settings.port}")
        return cls(
            settings.operator_token,
            shared=shared,
            sessions=OperatorSessions(
                shared,
                absolute_s=settings.operator_session_hours * 3600,
                idle_s=settings.operator_session_idle_minutes * 60,
            ),
            login_links=links,
            secure_cookie=settings.public_url.startswith("https://"),
            addresses=addresses,
        )

    @property
    def configured(self) -> bool:
        """Whether operators can get in at all (a token, or login links)."""
        return bool(self._token) or self.login_links is not None

    async def check(self, request: Request) -> Access:
        """What the request's credentials get it (counted once per request)."""
        cached = getattr(request.state, _STATE, None)
        if isinstance(cached, Access):
            return cached
        access = await self._check(request)
        setattr(request.state, _STATE, access)
        return access

    async def allowed(self, request: Request) -> bool:
        """Whether the request carries the token or a live session cookie."""
        return (await self.check(request)).granted

    async def require(self, request: Request) -> None:
        """FastAPI dependency: 403 unconfigured, 429 locked out, 401 without credentials."""
        if not self.configured:
            raise HTTPException(403, NOT_CONFIGURED)
        access = await self.check(request)
        if access.granted:
            return
        if access.retry_after_s:
            raise HTTPException(
                429,
                "Too many failed operator logins from this address: try again later.",
                headers={"Retry-After": str(access.retry_after_s)},
            )
        hint = LINK_HINT if self.login_links is not None else TOKEN_REQUIRED
        raise HTTPException(401, hint, headers={"WWW-Authenticate": "Bearer"})

    async def log_in(self, request: Request, *, token: str = "", link: str = "") -> Access:
        """Check a login (the form's token or a login link's); failures are counted."""
        client = self._addresses.of(request)
        locked = await self.throttle.locked_for(client)
        if locked:
            return Access(False, math.ceil(locked))
        if link:
            ok = self.login_links is not None and await self.login_links.redeem(link)
            what = "login link"
        else:
            ok = self._token_matches(token)
            what = "login token"
        if not ok:
            await self._failed(client, what)
            return Access(False)
        await self.throttle.succeeded(client)
        return Access(True)

    async def start_session(self, request: Request, response: Response) -> None:
        """Create a session and set its cookie on ``response``."""
        response.set_cookie(
            COOKIE,
            await self.sessions.create(),
            max_age=int(self.sessions.absolute_s),
            httponly=True,
            samesite="strict",
            secure=self._secure_cookie
            or request.url.scheme == "https"
            or request.headers.get("x-forwarded-proto") == "https",
            path="/",
        )

    async def end_session(self, request: Request, response: Response) -> None:
        """Revoke the request's session (on every process) and clear its cookie."""
        await self.sessions.revoke(request.cookies.get(COOKIE, ""))
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")

    async def offer_login_link(self) -> None:
        """Print a login link when none is out (loopback servers without a token)."""
        if self.login_links is not None and not await self.login_links.outstanding():
            await self.announce_login_link()

    async def announce_login_link(self) -> None:
        """Print a new one-time login link in the server's output."""
        if self.login_links is None:
            return
        minutes = round(self.login_links.ttl_s / 60)
        logger.warning(
            "Operator dashboard (no CALLAGENT_OPERATOR_TOKEN; this machine only): open "
            f"{await self.login_links.issue()} (one-time link, valid {minutes} min)"
        )

    # internals

    async def _check(self, request: Request) -> Access:
        if not self.configured:
            return Access(False)
        # a live session is a 256-bit secret nobody can guess: it works even while the
        # address is locked out (an operator behind the attacker's NAT keeps working)
        if await self.sessions.valid(request.cookies.get(COOKIE, "")):
            return Access(True)
        client = self._addresses.of(request)
        locked = await self.throttle.locked_for(client)
        if locked:
            return Access(False, math.ceil(locked))
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            if self._token_matches(value.strip()):
                await self.throttle.succeeded(client)
                return Access(True)
            await self._failed(client, "bearer token")
        return Access(False)

    def _token_matches(self, presented: str) -> bool:
        return bool(self._token) and hmac.compare_digest(
            presented.strip().encode(), self._token.encode()
        )

    async def _failed(self, client: str, what: str) -> None:
        """Count a failure (the next attempts are refused when it starts a lock-out)."""
        lockout = await self.throttle.failed(client)
        ref = self._addresses.ref(client)
        if lockout:
            logger.warning(
                f"operator auth: wrong {what} from client {ref}; "
                f"locked out for {lockout:.0f} s after repeated failures"
            )
        else:
            logger.warning(
                f"operator auth: wrong {what} from client {ref} "
                f"({await self.throttle.failures(client)} recent failures)"
            )
