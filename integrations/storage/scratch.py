"""Throw-away PostgreSQL databases (tests and benchmarks never touch a real one)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from integrations.storage.engine import normalize_url


@contextmanager
def scratch_postgres_database(server_url: str, prefix: str = "callagent_scratch") -> Iterator[str]:
    """Create a fresh, uniquely named database on ``server_url``'s server; drop it afterwards.

    Args:
        server_url: Any database URL on the server (the role needs CREATEDB).
        prefix: Name prefix of the new database.

    Yields:
        The new database's URL.
    """
    url = make_url(normalize_url(server_url))
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()
