"""The server: where it listens, its public URL, logs and data folder."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from bot.setting_types import LogFormat, UserPath


class ServerSettings(BaseSettings):
    """The server: where it listens, its public URL, logs and data folder."""

    host: str = Field(
        default="127.0.0.1",
        validation_alias="CALLAGENT_HOST",
        description="Address the server listens on (0.0.0.0 on a PaaS).",
    )
    port: int = Field(
        default=7860,
        validation_alias="PORT",
        description="Port the server listens on (PaaS platforms set PORT).",
    )
    public_url: str = Field(
        default="",
        validation_alias="CALLAGENT_PUBLIC_URL",
        description=(
            "Public https base URL (e.g. https://agent.example.com) used in TwiML stream URLs and "
            "signature checks; empty = derived from each request's Host header, on a loopback "
            "CALLAGENT_HOST only (elsewhere the Twilio routes need it)."
        ),
    )
    log_level: str = Field(
        default="INFO",
        validation_alias="CALLAGENT_LOG_LEVEL",
        description="Log level: DEBUG, INFO, WARNING or ERROR.",
    )
    log_format: LogFormat = Field(
        default="text",
        validation_alias="CALLAGENT_LOG_FORMAT",
        description=(
            "Log line format: text for people, json (one object per line, with the call "
            "id) for log collectors."
        ),
    )
    data_dir: UserPath = Field(
        default=Path("data"),
        validation_alias="CALLAGENT_DATA_DIR",
        description="Folder for the call database and other state.",
    )
    cache_dir: UserPath = Field(
        default=Path.home() / ".cache" / "callagent",
        validation_alias="CALLAGENT_CACHE_DIR",
        description="Folder for derived model files (optimised ASR graphs, trained NLU heads).",
    )
