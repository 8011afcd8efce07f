"""The record writer: applies record operations on one background thread.

Callers (the recorder, on the event loop) only put an operation on a queue, so a
slow or failing database never delays a call. The thread applies queued
operations in batches, one transaction per batch. When the database cannot be
reached, operations go, in order, to a local spool file (JSON lines) and are
replayed once it can (server processes sharing a data folder share its spool and take
turns at it under a file lock); an operation the database rejects outright (bad data) is
moved to a "rejected" file beside it rather than dropped. Either way no record is
lost and nothing is raised to the caller.

With a :class:`~integrations.storage.journal.Journal`, each operation is appended
to a local file before it is queued (the one synchronous step, a file append), so a
killed process loses nothing it had issued. The thread also runs periodic chores
(this process's heartbeat, crash recovery), once at start before anything queued.
"""

from __future__ import annotations

import fcntl
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

from integrations.storage.journal import FlushToSystem, Journal, JournalSync
from integrations.storage.ops import OP_TYPES, Op, Record, encode_op, read_ops

__all__ = ["OP_TYPES", "Chore", "Op", "Record", "RecordWriter", "Spool"]
BATCH_MAX = 200
RETRY_SECS = 5.0
SPOOL_FILE = "records-spool.jsonl"
REJECTED_FILE = "records-rejected.jsonl"
LOCK_FILE = "records-spool.lock"


def is_unavailable(error: BaseException) -> bool:
    """Whether an error means "database unreachable / not ready" (retry later)."""
    if isinstance(error, OperationalError | InterfaceError | DisconnectionError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


@dataclass
class WriterStats:
    """What the writer has done so far."""

    ops: int = 0
    batches: int = 0
    busy_secs: float = 0.0
    spooled: int = 0
    replayed: int = 0
    rejected: int = 0
    batch_ms: list[float] = field(default_factory=list)


@dataclass
class Chore:
    """Periodic work on the writer thread.

    Parameters:
        every_secs: How often it runs.
        run: The work (its errors are logged, never raised).
        name: For the log.
    """

    every_secs: float
    run: Callable[[], None]
    name: str
    due: float = 0.0
    """When it runs next (``time.monotonic``)."""
    failing: bool = False
    """Whether its last run failed (logged once per outage)."""


class Spool:
    """Operations waiting for the database, in order, in a JSON-lines file."""

    def __init__(self, directory: Path, sync: JournalSync | None = None):
        """Spool in ``directory``, each write pushed by ``sync`` (default: to the OS)."""
        self.path = Path(directory) / SPOOL_FILE
        self.rejected_path = Path(directory) / REJECTED_FILE
        self.lock_path = Path(directory) / LOCK_FILE
        self._sync = sync or FlushToSystem()

    def __bool__(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the spool, so processes sharing it take turns (an append; a read then rewrite).

        A replay reads the spool, writes it to the database and rewrites it with what is
        left: another process's append in between would be dropped. Not re-entrant.
        """
        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.lock_path.open("a")
        except OSError:
            logger.warning("record writer: cannot open the spool's lock; going on without it")
            yield
            return
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def append(self, ops: Sequence[Op]) -> None:
        """Add operations at the end."""
        self._write(self.path, ops)

    def reject(self, op: Op, error: BaseException) -> None:
        """Keep an operation the database refused, with the reason."""
        self._write(self.rejected_path, [op], error=type(error).__name__)

    def read(self) -> list[Op]:
        """Every spooled operation, oldest first (unreadable lines are kept aside)."""
        if not self:
            return []
        return read_ops(self.path, self.keep_unreadable)

    def keep_unreadable(self, line: str) -> None:
        """Keep a line that cannot be read (cut short by a crash) beside the rejected records."""
        self.rejected_path.parent.mkdir(parents=True, exist_ok=True)
        with self.rejected_path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    def clear(self) -> None:
        """Forget the spooled operations (after they were written)."""
        self.path.unlink(missing_ok=True)

    def replace(self, ops: Sequence[Op]) -> None:
        """Make ``ops`` the whole spool in one step (a crash leaves the old one or the new)."""
        if not ops:
            self.clear()
            return
        fresh = self.path.with_suffix(".tmp")
        fresh.unlink(missing_ok=True)
        self._write(fresh, ops)
        os.replace(fresh, self.path)

    def _write(self, path: Path, ops: Sequence[Op], **extra: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            for op in ops:
                f.write(encode_op(op, **extra))
            self._sync(f)


class RecordWriter:
    """A background thread applying record operations in order."""

    def __init__(
        self,
        apply: Callable[[Sequence[Op]], None],
        *,
        spool: Spool | None = None,
        journal: Journal | None = None,
        prepare: Callable[[], None] | None = None,
        chores: Sequence[Chore] = (),
        retry_secs: float = RETRY_SECS,
        name: str = "call-records",
        start: bool = True,
    ):
        """Start the writer thread.

        Args:
            apply: Writes a batch of operations in one transaction (raises on failure).
            spool: Where operations wait while the database is unavailable (None: they
                are retried in memory).
            journal: Where each operation is written before it is queued (None:
                queued operations live only in memory until written).
            prepare: Called before replaying spooled operations (e.g. run migrations).
            chores: Periodic work, run once at start (in order) before anything queued.
            retry_secs: How often a waiting spool is retried.
            name: Thread name.
            start: Start the thread now (False: call :meth:`start`).
        """
        self._apply = apply
        self._spool = spool
        self._journal = journal
        self._journal_failed = False
        self._prepare = prepare
        self._chores = list(chores)
        self._retry_secs = retry_secs
        self._queue: queue.SimpleQueue[Op | None] = queue.SimpleQueue()
        self._pending = 0
        self._memory_backlog: list[Op] = []
        self._lock = threading.Condition()
        self._closed = False
        self.stats = WriterStats()
        self.ready = threading.Event()
        """Set once the start-up chores (recovery) have run."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        if start:
            self._thread.start()

    def start(self) -> None:
        """Start the thread (when it was built with ``start=False``)."""
        if not self._thread.is_alive():
            self._thread.start()

    def submit(self, kind: str, record: Record) -> None:
        """Queue one operation (never blocks, never raises)."""
        if self._closed:
            logger.bind(call_id=_call_id(record)).warning(
                f"record writer closed; {kind} applied now"
            )
            self._write([(kind, record)])
            return
        with self._lock:
            self._append_to_journal((kind, record))
            self._pending += 1
        self._queue.put((kind, record))

    def _append_to_journal(self, op: Op) -> None:
        if self._journal is None:
            return
        try:
            self._journal.append(op)
            self._journal_failed = False
        except (OSError, ValueError) as e:
            if not self._journal_failed:
                logger.bind(call_id=_call_id(op[1])).warning(
                    f"record writer: cannot write the journal ({type(e).__name__}); "
                    "records are queued in memory only"
                )
            self._journal_failed = True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued operation was written or spooled."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    @property
    def backlog(self) -> int:
        """Operations waiting in the spool or in memory for the database."""
        return len(self._memory_backlog) + (len(self._spool.read()) if self._spool else 0)

    @property
    def has_backlog(self) -> bool:
        """Whether anything waits in memory or in the spool (cheap: the spool is not read)."""
        return bool(self._memory_backlog) or bool(self._spool)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)
        if self._journal is not None:
            self._journal.close()

    def _run(self) -> None:
        try:
            self._run_chores(force=True)
        finally:
            self.ready.set()
        while True:
            try:
                first = self._queue.get(timeout=self._next_wait())
            except queue.Empty:
                self.replay()
                self._run_chores()
                continue
            if first is None:
                self.replay()
                return
            batch = [first]
            while len(batch) < BATCH_MAX:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            try:
                if self._memory_backlog or self._spool:
                    self.replay()
                if self._memory_backlog or self._spool:
                    self.hold(batch)  # keep order: older operations are still waiting
                else:
                    self._write(batch)
            except Exception:  # noqa: BLE001 - the writer thread must survive anything
                logger.exception("record writer: unexpected error")
            finally:
                with self._lock:
                    self._pending -= len(batch)
                    if not self._pending and not self._memory_backlog and self._journal:
                        self._clear_journal()  # all of it is in the database or the spool
                    self._lock.notify_all()
            self._run_chores()

    def _clear_journal(self) -> None:
        try:
            if self._journal is not None:
                self._journal.clear()
        except (OSError, ValueError) as e:
            logger.warning(f"record writer: cannot empty the journal ({type(e).__name__})")

    def _next_wait(self) -> float | None:
        """How long the thread may sleep: until a chore is due, or a held spool's retry."""
        waits = [c.due - time.monotonic() for c in self._chores]
        if self._memory_backlog or self._spool:
            waits.append(self._retry_secs)
        return max(min(waits), 0.0) if waits else None

    def _run_chores(self, *, force: bool = False) -> None:
        for chore in self._chores:
            now = time.monotonic()
            if not force and now < chore.due:
                continue
            chore.due = now + chore.every_secs
            try:
                chore.run()
            except Exception as e:  # noqa: BLE001 - the writer thread must survive anything
                if not chore.failing:  # once per outage, not every few seconds
                    logger.warning(f"record writer: {chore.name} failed ({type(e).__name__})")
                chore.failing = True
            else:
                if chore.failing:
                    logger.info(f"record writer: {chore.name} works again")
                chore.failing = False

    def _write(self, batch: Sequence[Op]) -> None:
        """Apply a batch; on failure apply one by one, holding or rejecting failures."""
        if self._timed_apply(batch) is None:
            return
        for i, op in enumerate(batch):
            error = self._timed_apply([op])
            if error is None:
                continue
            if is_unavailable(error):
                logger.warning(
                    f"record writer: database unavailable ({type(error).__name__}); "
                    f"holding {len(batch) - i} operation(s) for later"
                )
                self.hold(batch[i:])
                return
            self._reject(op, error)

    def _timed_apply(self, batch: Sequence[Op]) -> BaseException | None:
        started = time.perf_counter()
        try:
            self._apply(batch)
        except Exception as e:  # noqa: BLE001 - reported to the caller as a value
            return e
        elapsed = time.perf_counter() - started
        self.stats.ops += len(batch)
        self.stats.batches += 1
        self.stats.busy_secs += elapsed
        if len(self.stats.batch_ms) < 100_000:
            self.stats.batch_ms.append(1000 * elapsed / len(batch))
        return None

    def hold(self, ops: Sequence[Op]) -> None:
        """Put operations in the spool behind those already there (writer thread only)."""
        if self._spool is not None:
            try:
                with self._spool.locked():
                    self._spool.append(ops)
                self.stats.spooled += len(ops)
                return
            except OSError:
                logger.exception("record writer: cannot spool; keeping records in memory")
        self._memory_backlog.extend(ops)

    def _reject(self, op: Op, error: BaseException) -> None:
        self.stats.rejected += 1
        logger.bind(call_id=_call_id(op[1])).error(
            f"record writer: {op[0]} refused by the database ({type(error).__name__})"
        )
        if self._spool is not None:
            try:
                self._spool.reject(op, error)
            except OSError:
                logger.exception("record writer: cannot keep the refused record")

    def replay(self) -> None:
        """Write held operations, oldest first, if the database is back (writer thread only)."""
        if not self._spool:  # nothing spooled (by this process or one sharing the folder)
            self._replay()
            return
        with self._spool.locked():
            self._replay()

    def _replay(self) -> None:
        held = list(self._memory_backlog) + (self._spool.read() if self._spool else [])
        if not held:
            return
        if self._prepare is not None:
            try:
                self._prepare()
            except Exception as e:  # noqa: BLE001
                if is_unavailable(e):
                    return
                logger.warning(f"record writer: preparing the database failed ({type(e).__name__})")
        if self._timed_apply(held) is not None:
            for i, op in enumerate(held):
                error = self._timed_apply([op])
                if error is None:
                    continue
                if is_unavailable(error):
                    self._replace_held(held[i:])
                    return
                else:
                    self._reject(op, error)
        self._replace_held([])
        self.stats.replayed += len(held)
        logger.info(f"record writer: {len(held)} held operation(s) written")

    def _replace_held(self, ops: Sequence[Op]) -> None:
        self._memory_backlog = []
        if self._spool is not None:
            try:
                self._spool.replace(ops)
                return
            except OSError:
                logger.exception("record writer: cannot rewrite the spool; records kept in memory")
        self._memory_backlog = list(ops)


def _call_id(record: Record) -> str:
    return getattr(record, "call_id", "?")
