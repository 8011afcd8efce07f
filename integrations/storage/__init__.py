"""Call records: SQLAlchemy models, Alembic migrations, a non-blocking writer, queries.

SQLite (WAL) by default, PostgreSQL (psycopg 3) when given a ``postgresql://`` URL.
"""

from integrations.storage.queries import CallFilter, parse_time
from integrations.storage.records import (
    CallEnd,
    CallStart,
    CallUpdate,
    Escalation,
    Outcome,
    TurnKind,
    TurnRecord,
)
from integrations.storage.store import CallStore

__all__ = [
    "CallEnd",
    "CallFilter",
    "CallStart",
    "CallStore",
    "CallUpdate",
    "Escalation",
    "Outcome",
    "TurnKind",
    "TurnRecord",
    "parse_time",
]
