"""Operator access to call records: a bearer token, or a dashboard session cookie.

``CALLAGENT_OPERATOR_TOKEN`` guards ``/api/calls`` and ``/dashboard``. While it is
unset both answer 403 with a message naming the setting: records are never open
by default. API clients send ``Authorization: Bearer <token>``; the dashboard's
login form exchanges the token for an HttpOnly, SameSite=Strict cookie holding an
HMAC of the token (never the token itself).
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import HTTPException, Request

COOKIE = "callagent_operator"
NOT_CONFIGURED = (
    "Call records are closed: set CALLAGENT_OPERATOR_TOKEN (16+ characters) in .env "
    "to open /api/calls and /dashboard."
)


class OperatorAuth:
    """Checks requests against the operator token."""

    def __init__(self, token: str):
        """Guard with ``token`` (empty: every request is refused with 403)."""
        self._token = token

    @property
    def configured(self) -> bool:
        """Whether an operator token is set."""
        return bool(self._token)

    def session_value(self) -> str:
        """The cookie value a logged-in dashboard carries."""
        return hmac.new(
            self._token.encode(), b"callagent-dashboard-session", hashlib.sha256
        ).hexdigest()

    def check_token(self, presented: str) -> bool:
        """Whether ``presented`` is the operator token (constant time)."""
        return self.configured and hmac.compare_digest(presented.encode(), self._token.encode())

    def allowed(self, request: Request) -> bool:
        """Whether the request carries the token or a valid session cookie."""
        if not self.configured:
            return False
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and self.check_token(value.strip()):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie, self.session_value())

    def require(self, request: Request) -> None:
        """FastAPI dependency: 403 when unconfigured, 401 without valid credentials."""
        if not self.configured:
            raise HTTPException(403, NOT_CONFIGURED)
        if not self.allowed(request):
            raise HTTPException(
                401,
                "Operator token required: send 'Authorization: Bearer <CALLAGENT_OPERATOR_TOKEN>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
