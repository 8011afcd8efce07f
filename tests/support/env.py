"""The process environment without the developer's callagent settings."""

from __future__ import annotations

import os

SETTINGS_PREFIXES = (
    "CALLAGENT_",
    "DAILY_",
    "LIVEKIT_",
    "GROQ_",
    "CARTESIA_",
    "TWILIO_",
    "HUBSPOT_",
    "CRM_",
    "LLM_",
    "DATABASE_URL",
)
"""Every variable ``bot.settings`` reads starts with one of these."""


def is_setting(name: str) -> bool:
    """Whether ``bot.settings`` may read the variable ``name``."""
    return name.startswith(SETTINGS_PREFIXES)


def scrubbed_environ() -> dict[str, str]:
    """``os.environ`` without any callagent setting (for a subprocess on the defaults)."""
    return {k: v for k, v in os.environ.items() if not is_setting(k)}
