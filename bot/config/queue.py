"""The campaign job queue (huey): where it lives, who consumes it, result webhooks."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from bot.setting_types import Flag, Secret
from integrations.outbound.queue import parse_queue_url


class QueueSettings(BaseSettings):
    """The campaign job queue (huey): where it lives, who consumes it, result webhooks."""

    queue_url: Secret = Field(
        default="",
        validation_alias="CALLAGENT_QUEUE_URL",
        description=(
            "Campaign job queue: empty = SQLite at <CALLAGENT_DATA_DIR>/queue.db (one host); "
            "redis://host:6379/0 or postgresql://... for worker processes on several hosts."
        ),
    )
    queue_in_process: Flag = Field(
        default=True,
        validation_alias="CALLAGENT_QUEUE_IN_PROCESS",
        description=(
            "`callagent serve` also runs the campaign queue's workers (threads); set false when "
            "separate `callagent worker` processes run."
        ),
    )
    queue_workers: int = Field(
        default=4,
        ge=1,
        le=64,
        validation_alias="CALLAGENT_QUEUE_WORKERS",
        description="Worker threads consuming the campaign queue in each process.",
    )
    queue_stale_dial_secs: float = Field(
        default=120.0,
        gt=0,
        validation_alias="CALLAGENT_QUEUE_STALE_DIAL_SECS",
        description=(
            "A dial claimed this long ago that the provider never named was lost with its "
            "worker: the reconcile ends it as failed and the contact moves on (never redialled)."
        ),
    )
    result_webhook_secret: Secret = Field(
        default="",
        validation_alias="CALLAGENT_RESULT_WEBHOOK_SECRET",
        description=(
            "HMAC-SHA256 key signing campaign result webhooks (X-Callagent-Signature); "
            "campaigns with a result webhook need it."
        ),
    )
    result_webhook_tries: int = Field(
        default=8,
        ge=1,
        le=30,
        validation_alias="CALLAGENT_RESULT_WEBHOOK_TRIES",
        description="Deliveries of one result webhook before giving up (failures back off).",
    )
    result_webhook_retry_secs: int = Field(
        default=30,
        ge=1,
        validation_alias="CALLAGENT_RESULT_WEBHOOK_RETRY_SECS",
        description="First wait before redelivering a failed result webhook; doubles each time.",
    )

    @field_validator("queue_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value:
            parse_queue_url(value)  # QueueUrlError (a ValueError) names the fix
        return value
