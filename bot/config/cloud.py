"""Cloud services (all optional): Groq/OpenAI, Cartesia, Daily, LiveKit."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from bot.setting_types import Secret


class CloudSettings(BaseSettings):
    """Cloud services (all optional): Groq/OpenAI, Cartesia, Daily, LiveKit."""

    groq_api_key: Secret = Field(
        default="",
        validation_alias="GROQ_API_KEY",
        description="Groq API key (console.groq.com).",
    )
    groq_model: str = Field(
        default="llama-3.3-70b-versatile",
        validation_alias="GROQ_MODEL",
        description="Groq chat model.",
    )
    llm_base_url: str = Field(
        default="",
        validation_alias="LLM_BASE_URL",
        description="OpenAI-compatible base URL (e.g. http://localhost:8000/v1).",
    )
    llm_api_key: Secret = Field(
        default="",
        validation_alias="LLM_API_KEY",
        description="API key for LLM_BASE_URL (if it needs one).",
    )
    llm_model: str = Field(
        default="",
        validation_alias="LLM_MODEL",
        description="Model name at LLM_BASE_URL.",
    )
    cartesia_api_key: Secret = Field(
        default="",
        validation_alias="CARTESIA_API_KEY",
        description="Cartesia API key.",
    )
    cartesia_voice_id: str = Field(
        default="71a7ad14-091c-4e8e-a314-022ece01c121",
        validation_alias="CARTESIA_VOICE_ID",
        description="Cartesia voice id.",
    )
    cartesia_base_url: str = Field(
        default="wss://api.cartesia.ai",
        validation_alias="CARTESIA_BASE_URL",
        description="Cartesia WebSocket API origin (STT and TTS; a fake on loopback in benches).",
    )
    daily_api_key: Secret = Field(
        default="",
        validation_alias="DAILY_API_KEY",
        description="Daily API key (creates rooms).",
    )
    daily_room_url: str = Field(
        default="",
        validation_alias="DAILY_ROOM_URL",
        description="An existing Daily room URL to join.",
    )
    daily_api_url: str = Field(
        default="https://api.daily.co/v1",
        validation_alias="DAILY_API_URL",
        description="Daily REST API base URL.",
    )
    livekit_url: str = Field(
        default="",
        validation_alias="LIVEKIT_URL",
        description="LiveKit server URL (wss://...).",
    )
    livekit_api_key: Secret = Field(
        default="",
        validation_alias="LIVEKIT_API_KEY",
        description="LiveKit API key.",
    )
    livekit_api_secret: Secret = Field(
        default="",
        validation_alias="LIVEKIT_API_SECRET",
        description="LiveKit API secret.",
    )
    livekit_room: str = Field(
        default="callagent",
        validation_alias="LIVEKIT_ROOM",
        description="LiveKit room the bot joins.",
    )
