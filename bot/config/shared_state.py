"""State shared by every process and host of a deployment (call owners, event streams)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from bot.setting_types import Secret
from integrations.shared_state.factory import shared_state_engine


class SharedStateSettings(BaseSettings):
    """State shared by every process and host of a deployment (call owners, event streams)."""

    shared_state_url: Secret = Field(
        default="",
        validation_alias="CALLAGENT_SHARED_STATE_URL",
        description=(
            "Where processes share live calls: empty = in this process only (one process); "
            "redis://host:6379/0 or postgresql://... for several processes or hosts."
        ),
    )

    @field_validator("shared_state_url")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        shared_state_engine(value)  # ValueError names the setting and the accepted forms
        return value
