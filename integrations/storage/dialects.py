"""What differs between SQLite and PostgreSQL, one strategy class per database.

The store and the statistics ask a :class:`DialectSupport` for upserts, day
grouping and fixed-width buckets, so no query needs an ``if sqlite`` branch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Integer,
    Table,
    cast,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite


class DialectSupport(ABC):
    """SQL that differs by database."""

    name: str

    @abstractmethod
    def upsert(
        self, table: Table, values: dict[str, Any], key: Sequence[str], update: Sequence[str]
    ) -> Any:
        """An INSERT that updates ``update`` columns when ``key`` already exists."""

    @abstractmethod
    def _insert(self, table: Table) -> Any: ...

    @abstractmethod
    def day(self, column: Any) -> ColumnElement[Any]:
        """The ``YYYY-MM-DD`` day of a datetime column, as text."""

    @abstractmethod
    def bucket(self, column: Any, width: float) -> ColumnElement[int]:
        """``floor(column / width)`` as an integer (columns are never negative)."""

    @abstractmethod
    def now(self, conn: Connection) -> datetime:
        """The database's clock (naive UTC): one clock for every host sharing it."""


class _OnConflict(DialectSupport):
    def upsert(
        self, table: Table, values: dict[str, Any], key: Sequence[str], update: Sequence[str]
    ) -> Any:
        stmt = self._insert(table).values(**values)
        return stmt.on_conflict_do_update(
            index_elements=list(key), set_={c: getattr(stmt.excluded, c) for c in update}
        )


class SQLiteSupport(_OnConflict):
    """SQLite: ``strftime`` days, integer truncation for buckets."""

    name = "sqlite"

    def _insert(self, table: Table) -> Any:
        return sqlite.insert(table)

    def day(self, column: Any) -> ColumnElement[Any]:
        """``strftime('%Y-%m-%d', column)``."""
        return func.strftime("%Y-%m-%d", column)

    def bucket(self, column: Any, width: float) -> ColumnElement[int]:
        """``CAST(column / width AS INTEGER)`` (truncation is floor for positive values)."""
        return cast(column / width, Integer)

    def now(self, conn: Connection) -> datetime:
        """This host's clock: an SQLite file is never shared across hosts."""
        return datetime.now(UTC).replace(tzinfo=None)


class PostgreSQLSupport(_OnConflict):
    """PostgreSQL: ``to_char`` days, ``floor`` for buckets."""

    name = "postgresql"

    def _insert(self, table: Table) -> Any:
        return postgresql.insert(table)

    def day(self, column: Any) -> ColumnElement[Any]:
        """``to_char(column, 'YYYY-MM-DD')``."""
        return func.to_char(column, "YYYY-MM-DD")

    def bucket(self, column: Any, width: float) -> ColumnElement[int]:
        """``floor(column / width)::integer`` (a plain cast would round)."""
        return cast(func.floor(column / width), Integer)

    def now(self, conn: Connection) -> datetime:
        """``timezone('UTC', clock_timestamp())``: the server's clock, not the host's."""
        return conn.execute(select(func.timezone("UTC", func.clock_timestamp()))).scalar_one()


def dialect_support(bind: Engine | Connection) -> DialectSupport:
    """The strategy for ``bind``'s database."""
    name = bind.dialect.name
    if name == "sqlite":
        return SQLiteSupport()
    if name == "postgresql":
        return PostgreSQLSupport()
    raise ValueError(f"unsupported database {name!r}: use SQLite or PostgreSQL")
