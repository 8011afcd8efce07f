"""A request's JSON object body, read no further than a size limit.

Both JSON endpoints a peer or operator may post to (``/api/calls/outbound``, ``/sip/dial``)
read their bodies here: the stream is consumed chunk by chunk and refused with 413 the
moment it passes the limit, so a client cannot make the server hold a large body in memory
before it is refused.
"""

from __future__ import annotations

import json
from typing import Any, cast

from fastapi import HTTPException, Request


async def json_object(
    request: Request, max_bytes: int, shape: str = "a JSON object"
) -> dict[str, Any]:
    """The body as a JSON object (raises 413 past ``max_bytes``, 400 naming ``shape``)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"the request body is larger than {max_bytes} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_bytes:
            raise HTTPException(413, f"the request body is larger than {max_bytes} bytes")
    try:
        body = json.loads(bytes(raw) or b"{}")
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, f"the request body must be JSON: {shape}") from None
    if not isinstance(body, dict):
        raise HTTPException(400, f"the request body must be {shape}")
    return cast(dict[str, Any], body)
