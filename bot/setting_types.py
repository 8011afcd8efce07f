"""The value types of settings: yes/no flags, secrets, paths and the enum-like choices.

Shared by the setting groups (``bot/config``) and :mod:`bot.settings`, which assembles them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator

REFERENCE_AGENT = Path(__file__).parent / "agents" / "dental_front_desk.yaml"
REMINDER_AGENT = Path(__file__).parent / "agents" / "appointment_reminders.yaml"
"""The reference outbound agent, served beside the default agent unless told otherwise."""


def lowercase(value: object) -> object:
    """Read an enum-like setting in any case ("WebRTC" is "webrtc")."""
    return value.lower() if isinstance(value, str) else value


def flag(value: object) -> object:
    """Read a yes/no setting: 1/true/yes/on or 0/false/no/off, in any case."""
    if not isinstance(value, str):
        return value
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


class SecretMarker:
    """Marks a setting whose value never appears in an error message."""


Secret = Annotated[str, SecretMarker()]
Flag = Annotated[bool, BeforeValidator(flag)]
UserPath = Annotated[Path, AfterValidator(Path.expanduser)]

# Enum-like settings accept any case ("WebRTC") and hold the lower-case value.
TransportChoice = Annotated[
    Literal["auto", "webrtc", "daily", "livekit", "sip"], BeforeValidator(lowercase)
]
STTName = Annotated[Literal["moonshine", "cartesia"], BeforeValidator(lowercase)]
TTSChoice = Annotated[Literal["auto", "piper", "cartesia"], BeforeValidator(lowercase)]
LLMChoice = Annotated[Literal["auto", "none", "groq", "openai"], BeforeValidator(lowercase)]
CallerIdStorage = Annotated[Literal["hash", "redact", "plain"], BeforeValidator(lowercase)]
CRMName = Annotated[Literal["none", "sqlite", "rest", "hubspot"], BeforeValidator(lowercase)]
RetentionAction = Annotated[Literal["delete", "anonymise"], BeforeValidator(lowercase)]
JournalSyncChoice = Annotated[Literal["flush", "fsync"], BeforeValidator(lowercase)]
LogFormat = Annotated[Literal["text", "json"], BeforeValidator(lowercase)]

SIP_DEFAULT_LISTEN = "127.0.0.1:5060"
"""Where ``CALLAGENT_TRANSPORT=sip`` listens when ``CALLAGENT_SIP_LISTEN`` is not set."""

# What an ``auto`` choice resolves to (see Settings.transport, .tts and .llm).
TransportName = Literal["webrtc", "daily", "livekit"]
TTSName = Literal["piper", "cartesia"]
LLMName = Literal["none", "groq", "openai"]
