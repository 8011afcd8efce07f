"""Call admission: who may start a call, and how many (bot/web/admission.py)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class AdmissionSettings(BaseSettings):
    """Call admission: who may start a call, and how many (bot/web/admission.py)."""

    max_calls: int = Field(
        default=20,
        validation_alias="CALLAGENT_MAX_CALLS",
        description=(
            "Calls (and browser offers waiting to connect) this process carries at once; more "
            "get 503 / WebSocket close 1013 with Retry-After (about 20 fit a 2-core server)."
        ),
    )
    call_rate_per_minute: float = Field(
        default=30.0,
        validation_alias="CALLAGENT_CALL_RATE_PER_MINUTE",
        description=(
            "Calls one client address may start per minute on each call-starting route "
            "(token bucket, CALLAGENT_CALL_RATE_BURST at once); more get 429; 0 = no limit."
        ),
    )
    call_rate_burst: int = Field(
        default=10,
        validation_alias="CALLAGENT_CALL_RATE_BURST",
        description="Calls one client address may start at once before the per-minute rate.",
    )
    trusted_proxies: str = Field(
        default="",
        validation_alias="CALLAGENT_TRUSTED_PROXIES",
        description=(
            "Comma-separated proxy addresses/networks (e.g. 10.0.0.0/8,127.0.0.1) whose "
            "X-Forwarded-For names the client; empty = the connecting address is the client."
        ),
    )
    allowed_origins: str = Field(
        default="",
        validation_alias="CALLAGENT_ALLOWED_ORIGINS",
        description=(
            "Comma-separated page origins (https://www.example.com) besides the server's own "
            "that may post browser-call offers to /api/offer."
        ),
    )
    webrtc_connect_timeout_secs: float = Field(
        default=10.0,
        validation_alias="CALLAGENT_WEBRTC_CONNECT_TIMEOUT_SECS",
        description=(
            "A browser offer whose peer connection is not connected after this long is closed; "
            "no call starts and nothing is recorded."
        ),
    )
    call_token_ttl_secs: int = Field(
        default=120,
        validation_alias="CALLAGENT_CALL_TOKEN_TTL_SECS",
        description=(
            "Lifetime of a single-use browser call token minted at POST /api/call-tokens "
            "(needed for browser calls when the server is not on loopback)."
        ),
    )
