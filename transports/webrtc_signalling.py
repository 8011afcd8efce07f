"""The browser's signalling bodies, read and checked: an SDP offer and trickled ICE.

``POST /api/offer`` and ``PATCH /api/offer`` (:mod:`transports.webrtc`) take JSON objects
sent as ``application/json`` only; every field is checked and bounded here, and a bad one
is a 4xx naming it (never a 500, and never logged: an SDP body carries addresses).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException, Request
from loguru import logger
from pipecat.transports.smallwebrtc.request_handler import (
    IceCandidate,
    SmallWebRTCPatchRequest,
    SmallWebRTCRequest,
)

MAX_BODY_BYTES = 256 * 1024
MAX_SDP_CHARS = 100_000
MAX_CANDIDATES = 64
MAX_PARAMS = 16
MAX_PARAM_KEY_CHARS = 64
MAX_PARAM_VALUE_CHARS = 256


def parse_offer(
    body: Mapping[str, Any], query: Mapping[str, str]
) -> tuple[SmallWebRTCRequest, dict[str, str]]:
    """Validate an offer request body.

    Args:
        body: The decoded JSON body: ``sdp``, ``type`` (``"offer"``), optional
            ``pc_id``, ``restart_pc`` and ``request_data`` (or ``requestData``).
        query: The request's query parameters.

    Returns:
        The request for Pipecat's handler (without the caller's data, which its
        error logs would print) and the caller's parameters.

    Raises:
        HTTPException: 400 naming what is wrong.

    """
    sdp = body.get("sdp")
    if not isinstance(sdp, str) or not sdp.strip():
        raise HTTPException(400, "'sdp' is required: a non-empty string with the SDP offer")
    if len(sdp) > MAX_SDP_CHARS:
        raise HTTPException(400, f"'sdp' is longer than {MAX_SDP_CHARS} characters")
    if not sdp.lstrip().startswith("v=0"):
        raise HTTPException(400, "'sdp' is not an SDP description (it must start with v=0)")
    if "m=audio " not in sdp:
        raise HTTPException(
            400, "the SDP offer has no audio section (m=audio): send the microphone"
        )
    sdp_type = body.get("type", "offer")
    if sdp_type != "offer":
        raise HTTPException(400, "'type' must be \"offer\"")
    pc_id = body.get("pc_id", body.get("pcId"))
    if pc_id is not None and (not isinstance(pc_id, str) or not pc_id):
        raise HTTPException(400, "'pc_id' must be a non-empty string when given")
    restart_pc = body.get("restart_pc", body.get("restartPc"))
    if restart_pc is not None and not isinstance(restart_pc, bool):
        raise HTTPException(400, "'restart_pc' must be true or false when given")
    data = body.get("request_data", body.get("requestData"))
    if data is not None and not isinstance(data, dict):
        raise HTTPException(400, "'request_data' must be a JSON object when given")
    params = caller_params({**dict(query), **(data or {})})
    request = SmallWebRTCRequest(sdp=sdp, type=sdp_type, pc_id=pc_id, restart_pc=restart_pc)
    return request, params


def parse_patch(body: Mapping[str, Any]) -> SmallWebRTCPatchRequest:
    """Validate a trickle-ICE request body.

    Args:
        body: ``{"pc_id": str, "candidates": [{"candidate": str, "sdp_mid": str,
            "sdp_mline_index": int}, ...]}``; the browser's ``sdpMid`` and
            ``sdpMLineIndex`` spellings are accepted too.

    Returns:
        The request for Pipecat's handler.

    Raises:
        HTTPException: 400 naming what is wrong.

    """
    pc_id = body.get("pc_id", body.get("pcId"))
    if not isinstance(pc_id, str) or not pc_id:
        raise HTTPException(400, "'pc_id' is required: the id the offer's answer returned")
    raw = body.get("candidates")
    if not isinstance(raw, list) or not raw:
        raise HTTPException(400, "'candidates' is required: a non-empty list of ICE candidates")
    if len(raw) > MAX_CANDIDATES:
        raise HTTPException(400, f"at most {MAX_CANDIDATES} candidates per request")
    candidates = []
    for i, c in enumerate(raw):
        if not isinstance(c, dict):
            raise HTTPException(400, f"candidates[{i}] must be an object")
        text = c.get("candidate")
        mid = c.get("sdp_mid", c.get("sdpMid"))
        index = c.get("sdp_mline_index", c.get("sdpMLineIndex"))
        if not isinstance(text, str):
            raise HTTPException(400, f"candidates[{i}].candidate must be a string")
        if text.startswith("candidate:"):
            text = text[len("candidate:") :]
        if text and len(text.split()) < 8:
            raise HTTPException(400, f"candidates[{i}].candidate is not an ICE candidate")
        if not isinstance(mid, str):
            raise HTTPException(400, f"candidates[{i}].sdp_mid must be a string")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise HTTPException(400, f"candidates[{i}].sdp_mline_index must be an integer >= 0")
        candidates.append(IceCandidate(candidate=text, sdp_mid=mid, sdp_mline_index=index))
    return SmallWebRTCPatchRequest(pc_id=pc_id, candidates=candidates)


async def json_object(request: Request) -> dict[str, Any]:
    """Read the request's JSON body, which must be an object sent as ``application/json``.

    Raises:
        HTTPException: 415 for another content type (a cross-site form or ``text/plain``
            post, which a browser sends without asking the server first), 413 or 400.
    """
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        logger.warning(f"WebRTC signalling refused: content type {media_type[:40] or 'none'!r}")
        raise HTTPException(415, "Content-Type must be application/json")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise HTTPException(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise HTTPException(400, "the request body must be JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "the request body must be a JSON object")
    return body


def caller_params(raw: Mapping[str, Any]) -> dict[str, str]:
    """Keep the scalar parameters a caller may pass (e.g. ``caller``), bounded in size."""
    params: dict[str, str] = {}
    for key, value in raw.items():
        if len(params) >= MAX_PARAMS:
            break
        if not isinstance(key, str) or not 0 < len(key) <= MAX_PARAM_KEY_CHARS:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            continue
        text = str(value)
        if len(text) <= MAX_PARAM_VALUE_CHARS:
            params[key] = text
    return params
