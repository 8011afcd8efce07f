"""The embedded CRM: customers, appointments, cases, interactions and pending actions in SQLite.

Zero set-up: the database file is created on first use (and, when asked, seeded with the
reference agent's demo customers). ``load_csv`` imports customers or any other table from
CSV (``callagent crm load FILE.csv``). Each operation opens its own connection in a worker
thread, so lookups run concurrently with the call's audio.
"""

from __future__ import annotations

import asyncio
import csv
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from integrations.crm.base import (
    CRM,
    Appointment,
    CallerRecord,
    CallOutcome,
    Case,
    CRMError,
    Interaction,
    PendingAction,
    normalize_phone,
    parse_datetime,
    wall_clock_now,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY,
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    phone TEXT UNIQUE,
    email TEXT NOT NULL DEFAULT '',
    date_of_birth TEXT NOT NULL DEFAULT '',
    pin TEXT NOT NULL DEFAULT '',
    account_status TEXT NOT NULL DEFAULT 'active'
);
CREATE TABLE IF NOT EXISTS appointments (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers(id),
    starts_at TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'appointment',
    provider TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'booked'
);
CREATE TABLE IF NOT EXISTS cases (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers(id),
    subject TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    opened_at TEXT
);
CREATE TABLE IF NOT EXISTS interactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT NOT NULL REFERENCES customers(id),
    at TEXT NOT NULL,
    channel TEXT NOT NULL DEFAULT 'call',
    summary TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS pending_actions (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers(id),
    kind TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    due TEXT,
    status TEXT NOT NULL DEFAULT 'open'
);
CREATE INDEX IF NOT EXISTS appointments_customer ON appointments(customer_id, starts_at);
CREATE INDEX IF NOT EXISTS interactions_customer ON interactions(customer_id, at);
"""

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": (
        "id",
        "first_name",
        "last_name",
        "phone",
        "email",
        "date_of_birth",
        "pin",
        "account_status",
    ),
    "appointments": ("id", "customer_id", "starts_at", "kind", "provider", "status"),
    "cases": ("id", "customer_id", "subject", "status", "opened_at"),
    "interactions": ("customer_id", "at", "channel", "summary", "outcome"),
    "pending_actions": ("id", "customer_id", "kind", "note", "due", "status"),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "customers": ("id", "phone"),
    "appointments": ("customer_id", "starts_at"),
    "cases": ("customer_id", "subject"),
    "interactions": ("customer_id", "at"),
    "pending_actions": ("customer_id", "kind"),
}
RECENT_INTERACTIONS = 5


class CSVImportError(ValueError):
    """A CSV file cannot be imported; the message names the row and column (never values)."""


class SQLiteCRM(CRM):
    """The embedded CRM in one SQLite file."""

    name = "sqlite"

    def __init__(self, path: Path, *, seed_demo: bool = False):
        """Open (creating if needed) the database at ``path``.

        Args:
            path: The SQLite file.
            seed_demo: Seed the reference agent's demo customers if the database is empty.
        """
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)
            empty = db.execute("SELECT COUNT(*) FROM customers").fetchone()[0] == 0
        if seed_demo and empty:
            from integrations.crm.demo_data import seed_rows

            self.insert_rows(seed_rows())

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=5.0)
        db.row_factory = sqlite3.Row
        try:
            with db:
                yield db
        finally:
            db.close()

    # Reads

    async def lookup(self, identity: str) -> CallerRecord | None:
        """Find a customer by phone (any format), id or email."""
        try:
            return await asyncio.to_thread(self.lookup_sync, identity)
        except sqlite3.Error as e:
            raise CRMError(f"sqlite lookup failed: {type(e).__name__}") from e

    def lookup_sync(self, identity: str) -> CallerRecord | None:
        """Blocking :meth:`lookup` (CLI and benchmarks)."""
        identity = identity.strip()
        if not identity:
            return None
        phone = normalize_phone(identity)
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM customers WHERE phone = ? OR id = ? OR (email != '' AND email = ?)"
                " LIMIT 1",
                (phone or "\x00", identity, identity.lower()),
            ).fetchone()
            if row is None:
                return None
            cid = row["id"]
            appointments = db.execute(
                "SELECT * FROM appointments WHERE customer_id = ?"
                " AND status IN ('booked', 'confirmed')"
                " AND starts_at >= ? ORDER BY starts_at LIMIT 10",
                (cid, (wall_clock_now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")),
            ).fetchall()
            interactions = db.execute(
                "SELECT * FROM interactions WHERE customer_id = ? ORDER BY at DESC LIMIT ?",
                (cid, RECENT_INTERACTIONS),
            ).fetchall()
            cases = db.execute(
                "SELECT * FROM cases WHERE customer_id = ? AND status != 'closed'"
                " ORDER BY opened_at",
                (cid,),
            ).fetchall()
            actions = db.execute(
                "SELECT * FROM pending_actions WHERE customer_id = ? AND status = 'open'"
                " ORDER BY due",
                (cid,),
            ).fetchall()
        return CallerRecord(
            customer_id=cid,
            first_name=row["first_name"],
            last_name=row["last_name"],
            phone=row["phone"] or "",
            email=row["email"],
            account_status=row["account_status"],
            appointments=tuple(
                Appointment(a["id"], _naive(a["starts_at"]), a["kind"], a["provider"], a["status"])
                for a in appointments
            ),
            interactions=tuple(
                Interaction(_naive(i["at"]), i["channel"], i["summary"], i["outcome"])
                for i in interactions
            ),
            open_cases=tuple(
                Case(c["id"], c["subject"], c["status"], parse_datetime(c["opened_at"]))
                for c in cases
            ),
            pending_actions=tuple(
                PendingAction(p["id"], p["kind"], p["note"], parse_datetime(p["due"]))
                for p in actions
            ),
            source=self.name,
            secrets={"pin": row["pin"], "date_of_birth": row["date_of_birth"]},
        )

    def count(self, table: str) -> int:
        """Rows in ``table``."""
        if table not in TABLE_COLUMNS:
            raise ValueError(f"unknown table {table!r}")
        with self._connect() as db:
            return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def customer_phones(self) -> list[str]:
        """Every customer's phone number (benchmarks)."""
        with self._connect() as db:
            return [r[0] for r in db.execute("SELECT phone FROM customers WHERE phone IS NOT NULL")]

    # Writes

    async def log_call(self, customer_id: str, outcome: CallOutcome) -> None:
        """Add the call to the customer's interactions."""
        at = (outcome.started_at or datetime.now()).strftime("%Y-%m-%dT%H:%M:%S")
        await self._write(
            "INSERT INTO interactions (customer_id, at, channel, summary, outcome)"
            " VALUES (?, ?, 'call', ?, ?)",
            (customer_id, at, outcome.summary, outcome.outcome),
        )

    async def move_appointment(
        self, customer_id: str, appointment_id: str, starts_at: datetime
    ) -> None:
        """Move an appointment to a new time."""
        await self._write(
            "UPDATE appointments SET starts_at = ? WHERE id = ? AND customer_id = ?",
            (starts_at.strftime("%Y-%m-%dT%H:%M"), appointment_id, customer_id),
            must_change=True,
        )

    async def cancel_appointment(self, customer_id: str, appointment_id: str) -> None:
        """Cancel an appointment."""
        await self._write(
            "UPDATE appointments SET status = 'cancelled' WHERE id = ? AND customer_id = ?",
            (appointment_id, customer_id),
            must_change=True,
        )

    async def confirm_appointment(self, customer_id: str, appointment_id: str) -> None:
        """Mark a booked appointment as confirmed."""
        await self._write(
            "UPDATE appointments SET status = 'confirmed'"
            " WHERE id = ? AND customer_id = ? AND status IN ('booked', 'confirmed')",
            (appointment_id, customer_id),
            must_change=True,
        )

    async def add_pending_action(self, customer_id: str, kind: str, note: str = "") -> None:
        """Record something owed to the customer."""
        due = (datetime.now() + timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M")
        await self._write(
            "INSERT INTO pending_actions (id, customer_id, kind, note, due) VALUES (?, ?, ?, ?, ?)",
            (f"act_{uuid.uuid4().hex[:10]}", customer_id, kind, note, due),
        )

    async def _write(self, sql: str, args: tuple[Any, ...], *, must_change: bool = False) -> None:
        def run() -> int:
            with self._connect() as db:
                return db.execute(sql, args).rowcount

        try:
            changed = await asyncio.to_thread(run)
        except sqlite3.Error as e:
            raise CRMError(f"sqlite write failed: {type(e).__name__}") from e
        if must_change and changed == 0:
            raise CRMError("no such record for this customer")

    # Bulk import

    def insert_rows(self, rows: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Insert or replace ``(table, row)`` pairs; returns how many were written."""
        written = 0
        with self._connect() as db:
            for table, row in rows:
                columns = [c for c in TABLE_COLUMNS[table] if c in row]
                marks = ", ".join("?" for _ in columns)
                db.execute(
                    f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                    [row[c] for c in columns],
                )
                written += 1
        return written

    def load_csv(self, path: Path, table: str | None = None) -> tuple[str, int]:
        """Import a CSV file into ``table`` (detected from the header when not given).

        Phone numbers are normalised to E.164; customers without an ``id`` get one.

        Returns:
            The table and the number of rows imported.

        Raises:
            CSVImportError: naming the row and the column at fault.
        """
        with Path(path).open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in reader.fieldnames or []]
            table = table or detect_table(header)
            rows = [
                (
                    table,
                    _clean_row(
                        table, {k.strip(): (v or "").strip() for k, v in raw.items() if k}, line
                    ),
                )
                for line, raw in enumerate(reader, start=2)
            ]
        return table, self.insert_rows(rows)


def detect_table(header: list[str]) -> str:
    """Which table a CSV header describes."""
    cols = set(header)
    if {"first_name", "phone"} <= cols or {"phone", "account_status"} <= cols:
        return "customers"
    if "starts_at" in cols:
        return "appointments"
    if "subject" in cols:
        return "cases"
    if "summary" in cols and "at" in cols:
        return "interactions"
    if "kind" in cols:
        return "pending_actions"
    raise CSVImportError(
        "cannot tell which table this CSV is for; pass --table "
        f"({', '.join(TABLE_COLUMNS)}); customers need the columns first_name and phone"
    )


def _clean_row(table: str, row: dict[str, str], line: int) -> dict[str, Any]:
    unknown = set(row) - set(TABLE_COLUMNS[table])
    if unknown:
        raise CSVImportError(
            f"line {line}: unknown column(s) {', '.join(sorted(unknown))} for {table} "
            f"(expected {', '.join(TABLE_COLUMNS[table])})"
        )
    if table == "customers" and not row.get("id"):
        row["id"] = f"cus_{uuid.uuid4().hex[:10]}"
    if table in ("appointments", "cases", "pending_actions") and not row.get("id"):
        row["id"] = f"{table[:3]}_{uuid.uuid4().hex[:10]}"
    for column in _REQUIRED[table]:
        if not row.get(column):
            raise CSVImportError(f"line {line}: column '{column}' is required for {table}")
    if table == "customers":
        phone = normalize_phone(row["phone"])
        if phone is None:
            raise CSVImportError(f"line {line}: column 'phone' is not a phone number")
        row["phone"] = phone
        row["email"] = row.get("email", "").lower()
    for column in ("starts_at", "at", "due", "opened_at"):
        if row.get(column) and parse_datetime(row[column]) is None:
            raise CSVImportError(f"line {line}: column '{column}' is not an ISO date/time")
    return {k: v for k, v in row.items() if v != "" or k in _REQUIRED[table]}


def _naive(text: str) -> datetime:
    value = parse_datetime(text)
    if value is None:
        raise CRMError("bad date in the database")
    return value
