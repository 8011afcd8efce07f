"""Escalation to a person: transfer targets and the screen pop."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from bot.setting_types import Secret


class EscalationSettings(BaseSettings):
    """Escalation to a person: transfer targets and the screen pop."""

    screen_pop_url: str = Field(
        default="",
        validation_alias="CALLAGENT_SCREEN_POP_URL",
        description=(
            "Agent-desktop webhook that receives the hand-off summary (signed JSON POST) before a "
            "transfer; empty = none."
        ),
    )
    screen_pop_secret: Secret = Field(
        default="",
        validation_alias="CALLAGENT_SCREEN_POP_SECRET",
        description="HMAC-SHA256 key signing screen-pop POSTs (X-Callagent-Signature).",
    )
    screen_pop_attempts: int = Field(
        default=3,
        validation_alias="CALLAGENT_SCREEN_POP_ATTEMPTS",
        description="Screen-pop delivery attempts (retries included).",
    )
    screen_pop_timeout_secs: float = Field(
        default=2.0,
        validation_alias="CALLAGENT_SCREEN_POP_TIMEOUT_SECS",
        description="Per-attempt timeout of a screen-pop POST.",
    )
