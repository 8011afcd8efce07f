"""Call records for this process: the store and the personal-data policy, built from settings.

The store is process-wide (one writer thread, one connection pool); each call
gets its own :class:`~processors.call_recorder.CallRecorder` from
:meth:`CallRecords.recorder`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from bot.settings import Settings
from integrations.storage import CallStore
from integrations.storage.caller_id import (
    CallerIdPolicy,
    HashedCallerId,
    PlainCallerId,
    RedactedCallerId,
)
from integrations.storage.engine import describe_url
from integrations.storage.journal import JOURNAL_SYNC
from integrations.storage.personal_data import PersonalDataPolicy, personal_data_policy
from integrations.storage.retention import RETENTION_ACTIONS, RetentionJob
from integrations.storage.workers import WorkerConfig, WorkerId, name_this_host

if TYPE_CHECKING:
    from processors.call_recorder import CallRecorder
    from processors.outbound_call import OutboundCall

SALT_FILE = "caller-id-salt"


@dataclass
class CallRecords:
    """The process's call store and what it keeps of callers' personal data."""

    store: CallStore
    caller_ids: CallerIdPolicy
    personal_data: PersonalDataPolicy = field(init=False)
    """Follows ``caller_ids``: ``plain`` keeps personal data, ``hash``/``redact`` mask it."""
    retention: RetentionJob | None = None
    """Applies ``CALLAGENT_RETENTION_DAYS`` daily (None: records are kept)."""

    def __post_init__(self) -> None:
        """Derive the personal-data policy from the caller-id policy."""
        self.personal_data = personal_data_policy(self.caller_ids)

    def recorder(
        self,
        *,
        call_id: str,
        transport: str,
        caller: str | None,
        direction: str = "inbound",
        agent: str | None = None,
        provider_call_id: str | None = None,
        outbound: OutboundCall | None = None,
    ) -> CallRecorder:
        """A recorder for one call (caller id and personal data stored in the configured form)."""
        from processors.call_recorder import CallRecorder

        return CallRecorder(
            self.store,
            provider_call_id=provider_call_id,
            outbound=outbound,
            call_id=call_id,
            transport=transport,
            caller=self.personal_data.caller_id(caller),
            direction=direction,
            agent=agent,
            personal_data=self.personal_data,
        )


def open_call_records(
    settings: Settings, *, recovery_wait_secs: float = 15.0, retention: bool = True
) -> CallRecords:
    """Open the call store for this server process, migrating its schema.

    The store runs as this process's worker (its heartbeat, its journal); before
    this returns it has recovered what dead processes left (journaled records, calls
    left open, closed as failed), waiting at most ``recovery_wait_secs`` for a slow
    database (the writer carries on in the background). When
    ``CALLAGENT_RETENTION_DAYS`` is set (and ``retention``), the retention job starts.
    """
    store = open_store(settings, worker=worker_config(settings))
    if not store.writer.ready.wait(recovery_wait_secs):
        logger.warning("call records: crash recovery still running (database slow)")
    records = CallRecords(store, caller_id_policy(settings))
    if retention and settings.retention_days > 0:
        records.retention = start_retention(store, settings)
    return records


def start_retention(store: CallStore, settings: Settings) -> RetentionJob:
    """Apply ``CALLAGENT_RETENTION_DAYS`` now and then daily, in a background thread.

    Calls older than that are deleted or anonymised (``CALLAGENT_RETENTION_ACTION``).
    """
    action = settings.retention_action
    done = RETENTION_ACTIONS[action].done
    logger.info(f"call records: calls older than {settings.retention_days} days are {done} daily")
    return RetentionJob(lambda cutoff: store.purge(cutoff, action), settings.retention_days)


def worker_config(settings: Settings) -> WorkerConfig:
    """This process as a call-record worker (its host's name, heartbeat and stale limit).

    Names this host (``CALLAGENT_WORKER_HOST``) for every later ``WorkerId.current()``.
    """
    name_this_host(settings.worker_host)
    return WorkerConfig(
        id=WorkerId.current(),
        heartbeat_secs=settings.worker_heartbeat_secs,
        stale_secs=settings.worker_stale_secs,
    )


def open_store(
    settings: Settings, *, migrate_schema: bool = True, worker: WorkerConfig | None = None
) -> CallStore:
    """The call store at ``DATABASE_URL`` (default SQLite ``<data dir>/calls.db``)."""
    url = settings.records_database_url
    store = CallStore.open(
        url,
        spool_dir=settings.data_dir,
        migrate_schema=migrate_schema,
        worker=worker,
        journal_sync=JOURNAL_SYNC[settings.records_journal_sync](),
    )
    logger.info(f"call records: {describe_url(url)}")
    return store


def caller_id_policy(settings: Settings) -> CallerIdPolicy:
    """The strategy ``CALLAGENT_CALLER_ID_STORAGE`` names."""
    if settings.caller_id_storage == "plain":
        return PlainCallerId()
    if settings.caller_id_storage == "redact":
        return RedactedCallerId()
    return HashedCallerId(caller_id_salt(settings))


def caller_id_salt(settings: Settings) -> str:
    """``CALLAGENT_CALLER_ID_SALT``, else a random salt generated once per data dir.

    The generated salt is kept in ``<CALLAGENT_DATA_DIR>/caller-id-salt`` (mode 600)
    so hashes stay comparable across restarts; servers that share one database
    should set the same ``CALLAGENT_CALLER_ID_SALT``.
    """
    if settings.caller_id_salt:
        return settings.caller_id_salt
    path = Path(settings.data_dir) / SALT_FILE
    if path.is_file():
        salt = path.read_text(encoding="utf-8").strip()
        if salt:
            return salt
    path.parent.mkdir(parents=True, exist_ok=True)
    salt = secrets.token_hex(32)
    path.write_text(salt + "\n", encoding="utf-8")
    path.chmod(0o600)
    logger.info(f"call records: generated a caller-id salt in {path}")
    return salt
