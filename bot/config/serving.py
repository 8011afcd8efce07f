"""Serving: worker processes, graceful drain and recycling (bot/serving/)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class ServingSettings(BaseSettings):
    """Serving: worker processes, graceful drain and recycling (bot/serving/)."""

    workers: int = Field(
        default=1,
        validation_alias="CALLAGENT_WORKERS",
        description=(
            "Server processes on the one port (callagent serve --workers wins); above 1 "
            "they need CALLAGENT_SHARED_STATE_URL (Redis or PostgreSQL)."
        ),
    )
    drain_secs: float = Field(
        default=300.0,
        validation_alias="CALLAGENT_DRAIN_SECS",
        description=(
            "On SIGTERM, how long live calls may go on before each is handed to a person or "
            "ended with the agent's goodbye (Heroku-like platforms kill after 30 s: use ~25)."
        ),
    )
    recycle_after_calls: int = Field(
        default=0,
        validation_alias="CALLAGENT_RECYCLE_AFTER_CALLS",
        description=(
            "Replace a worker process after it has taken this many calls (a fresh one loads "
            "its models first, then the old one drains); 0 = never."
        ),
    )
    recycle_after_mb: int = Field(
        default=0,
        validation_alias="CALLAGENT_RECYCLE_AFTER_MB",
        description=(
            "Replace a worker process whose resident memory passes this many MB (as "
            "CALLAGENT_RECYCLE_AFTER_CALLS); 0 = never."
        ),
    )
