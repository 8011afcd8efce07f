"""The API docs for operators only: ``/openapi.json``, ``/docs`` (Swagger UI), ``/redoc``.

FastAPI's public defaults are turned off (``create_app``); these routes serve the same
pages behind the operator check (bearer token or dashboard session). The two HTML pages
load Swagger UI and ReDoc from jsDelivr, as FastAPI's do, under a policy of their own:
those hosts, and the page's one inline script by its hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from bot.operator.auth import OperatorAuth

OPENAPI_URL = "/openapi.json"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def docs_policy(html: str) -> str:
    """The Content-Security-Policy of a docs page: its CDN hosts and inline scripts' hashes."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _INLINE_SCRIPT.findall(html)
    )
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' https://cdn.jsdelivr.net {hashes}".strip(),
            # Swagger UI and ReDoc add style elements as they render
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com",
            "font-src 'self' https://fonts.gstatic.com",
            "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
            "connect-src 'self'",
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        )
    )


def _page(page: HTMLResponse) -> Callable[[], HTMLResponse]:
    """A docs page rendered once, with its policy; a fresh response per request."""
    html = bytes(page.body).decode()
    headers = {"Content-Security-Policy": docs_policy(html)}
    return lambda: HTMLResponse(html, headers=headers)


def create_docs_router(
    openapi: Callable[[], dict[str, Any]], auth: OperatorAuth, *, title: str
) -> APIRouter:
    """The docs routes, each behind :meth:`OperatorAuth.require`.

    Args:
        openapi: Returns the app's OpenAPI schema (``app.openapi``).
        auth: The operator check.
        title: The pages' title.
    """
    router = APIRouter(include_in_schema=False, dependencies=[Depends(auth.require)])
    swagger_page = _page(get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{title} · API"))
    redoc_page = _page(get_redoc_html(openapi_url=OPENAPI_URL, title=f"{title} · API"))

    @router.get(OPENAPI_URL)
    async def openapi_schema() -> JSONResponse:
        return JSONResponse(openapi())

    @router.get("/docs")
    async def swagger_ui() -> HTMLResponse:
        return swagger_page()

    @router.get("/redoc")
    async def redoc() -> HTMLResponse:
        return redoc_page()

    return router
