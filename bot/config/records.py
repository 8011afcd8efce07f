"""Call records, personal data, retention and the operator dashboard."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from bot.setting_types import CallerIdStorage, JournalSyncChoice, RetentionAction, Secret


class RecordsSettings(BaseSettings):
    """Call records, personal data, retention and the operator dashboard."""

    database_url: Secret = Field(
        default="",
        validation_alias="DATABASE_URL",
        description=(
            "Call-record database (postgresql://user:password@host/db); "
            "empty = SQLite at <CALLAGENT_DATA_DIR>/calls.db."
        ),
    )
    caller_id_storage: CallerIdStorage = Field(
        default="hash",
        validation_alias="CALLAGENT_CALLER_ID_STORAGE",
        description=(
            "How call records keep the caller's number: hash (salted SHA-256), "
            "redact (last 2 digits) or plain; hash and redact also mask phone numbers, "
            "e-mails, names, digits and dates in stored transcripts and summaries."
        ),
    )
    retention_days: int = Field(
        default=0,
        ge=0,
        validation_alias="CALLAGENT_RETENTION_DAYS",
        description=(
            "Call records older than this many days are deleted or anonymised at start-up "
            "and daily (CALLAGENT_RETENTION_ACTION); 0 = kept forever."
        ),
    )
    retention_action: RetentionAction = Field(
        default="delete",
        validation_alias="CALLAGENT_RETENTION_ACTION",
        description=(
            "What happens to records past CALLAGENT_RETENTION_DAYS: delete, or anonymise "
            "(caller id, summary and turn texts cleared; statistics kept)."
        ),
    )
    caller_id_salt: Secret = Field(
        default="",
        validation_alias="CALLAGENT_CALLER_ID_SALT",
        description=(
            "Salt of hashed caller ids; empty = a random one generated once into "
            "<CALLAGENT_DATA_DIR>/caller-id-salt (set the same value on servers sharing a "
            "database)."
        ),
    )
    operator_token: Secret = Field(
        default="",
        validation_alias="CALLAGENT_OPERATOR_TOKEN",
        description=(
            "Bearer token for /api/calls, /dashboard and /docs (16+ characters); empty = they "
            "answer 403, except on a loopback-only server, which prints a one-time login link."
        ),
    )
    operator_session_hours: float = Field(
        default=12.0,
        validation_alias="CALLAGENT_OPERATOR_SESSION_HOURS",
        description="A dashboard login lasts at most this long (hours).",
    )
    operator_session_idle_minutes: float = Field(
        default=30.0,
        validation_alias="CALLAGENT_OPERATOR_SESSION_IDLE_MINUTES",
        description="A dashboard login ends after this long without a request (minutes).",
    )

    records_journal_sync: JournalSyncChoice = Field(
        default="flush",
        validation_alias="CALLAGENT_RECORDS_JOURNAL_SYNC",
        description=(
            "Each call-record write goes to <CALLAGENT_DATA_DIR>/records-journal first: "
            "flush (to the OS; survives a killed process) or fsync (journal and spool to disk; "
            "with PostgreSQL survives a power cut; ~4 ms per turn)."
        ),
    )
    worker_heartbeat_secs: float = Field(
        default=10.0,
        gt=0,
        validation_alias="CALLAGENT_WORKER_HEARTBEAT_SECS",
        description="How often this server process records in the call database that it is alive.",
    )
    worker_host: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._-]*$",
        validation_alias="CALLAGENT_WORKER_HOST",
        description=(
            "This host's name in server-process ids (letters, digits, . _ -); empty = the "
            "host name and pid namespace. Processes naming one host judge each other by pid: "
            "give each machine or container its own (tests name pretend hosts with it)."
        ),
    )
    worker_stale_secs: float = Field(
        default=60.0,
        gt=0,
        validation_alias="CALLAGENT_WORKER_STALE_SECS",
        description=(
            "A server process silent this long is dead: its open calls are closed as failed "
            "(at least 3x CALLAGENT_WORKER_HEARTBEAT_SECS)."
        ),
    )
