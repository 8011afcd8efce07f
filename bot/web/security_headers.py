"""Security headers on every HTTP response of the agent's server (an ASGI middleware).

Every page and API answer gets a Content-Security-Policy that allows only the server's
own scripts, styles and connections (the call page and the dashboard have no inline
script or style), may not be framed (``frame-ancestors 'none'`` and ``X-Frame-Options:
DENY``), is not content-sniffed, sends no referrer, and, when the public URL is https,
``Strict-Transport-Security``. A response that sets its own policy keeps it (the API
docs pages, which load Swagger UI / ReDoc). Operator answers (call records, dashboard,
API docs) are never cached.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "media-src 'self' blob: mediastream:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HSTS = "max-age=31536000; includeSubDomains"
NO_STORE_PREFIXES = ("/api/calls", "/api/diagnostics", "/dashboard", "/docs", "/redoc", "/openapi")


class SecurityHeaders:
    """Adds the security headers to each HTTP response (WebSockets pass through)."""

    def __init__(self, app: ASGIApp, *, https: bool = False) -> None:
        """Wrap ``app``; ``https``: the public URL is https (adds Strict-Transport-Security)."""
        self.app = app
        self.headers = {
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
        if https:
            self.headers["Strict-Transport-Security"] = HSTS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = str(scope.get("path", "")).startswith(NO_STORE_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
                if no_store:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)
