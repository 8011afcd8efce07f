"""``callagent db``: the call-record database schema.

``callagent db upgrade`` applies the shipped Alembic migrations (the server also
does this at start-up); ``callagent db current`` prints the schema revision.
"""

from __future__ import annotations

import argparse

from bot.cli.calls import quiet_logs
from bot.settings import Settings


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``db upgrade`` and ``db current``."""
    db = subparsers.add_parser("db", help="call-record database schema (migrations)")
    commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = commands.add_parser("upgrade", help="apply migrations (alembic upgrade head)")
    upgrade.set_defaults(func=run_upgrade)
    current = commands.add_parser("current", help="print the schema revision")
    current.set_defaults(func=run_current)


def run_upgrade(_args: argparse.Namespace) -> int:
    """``callagent db upgrade``."""
    from bot.call.records import open_store
    from integrations.storage.migrate import head_revision

    quiet_logs()
    store = open_store(Settings.load(), migrate_schema=False)
    try:
        before = store.revision()
        store.upgrade()
        after = store.revision()
    finally:
        store.close()
    print(f"{store.url}: {before or 'empty'} -> {after} (head {head_revision()})")
    return 0


def run_current(_args: argparse.Namespace) -> int:
    """``callagent db current``."""
    from bot.call.records import open_store
    from integrations.storage.migrate import head_revision

    quiet_logs()
    store = open_store(Settings.load(), migrate_schema=False)
    try:
        revision = store.revision()
    finally:
        store.close()
    head = head_revision()
    state = "up to date" if revision == head else f"behind: run `callagent db upgrade` ({head})"
    print(f"{store.url}: {revision or 'empty'} ({state})")
    return 0 if revision == head else 1
