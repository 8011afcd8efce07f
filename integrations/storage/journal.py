"""The record journal: every record operation on local disk before it is queued.

The writer thread commits operations a few milliseconds after they are queued, but
while it waits on the database (a lock, a slow or unreachable server) they would
sit only in memory, and a killed process would lose them. So each operation is
first appended to this process's journal file (one JSON line, written to the
operating system before the call goes on: a killed process cannot lose it). The
writer empties the journal whenever everything queued is in the database or the
spool. A journal left behind by a dead process is taken over at the next start-up
(or by a live peer on the same host): its operations go to the spool, in order,
and are written from there.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

from loguru import logger

from integrations.storage.ops import Op, encode_op, read_ops
from integrations.storage.workers import WorkerId

JOURNAL_DIR = "records-journal"
_NAME = re.compile(r"^(?P<host>.+)~(?P<pid>\d+)~(?P<token>[0-9a-f]+)~[0-9a-f]+\.jsonl$")


class JournalSync(Protocol):
    """How far an appended line is pushed before :meth:`Journal.append` returns."""

    def __call__(self, file: IO[str]) -> None:
        """Push ``file``'s appended lines."""
        ...


class FlushToSystem:
    """Hand each line to the operating system: survives a killed process (the default)."""

    def __call__(self, file: IO[str]) -> None:
        """``flush()`` the line into the kernel's page cache."""
        file.flush()


class FsyncToDisk:
    """Force each line to the disk too: survives a power cut, costs a disk flush per record."""

    def __call__(self, file: IO[str]) -> None:
        """``flush()`` then ``fsync()``."""
        file.flush()
        os.fsync(file.fileno())


JOURNAL_SYNC: dict[str, Callable[[], JournalSync]] = {
    "flush": FlushToSystem,
    "fsync": FsyncToDisk,
}
"""The journal strategies by setting value (``CALLAGENT_RECORDS_JOURNAL_SYNC``)."""


class Journal:
    """One process's journal file: appended on the call's path, emptied by the writer."""

    def __init__(self, directory: Path, worker: WorkerId, sync: JournalSync | None = None):
        """Open (create) this store's journal in ``directory/records-journal``.

        Args:
            directory: The data folder.
            worker: This process (named in the file name, so a survivor can tell
                whether the writer of a journal is gone).
            sync: How far each line is pushed (default :class:`FlushToSystem`).
        """
        folder = Path(directory) / JOURNAL_DIR
        folder.mkdir(parents=True, exist_ok=True)
        host = re.sub(r"[^A-Za-z0-9.-]", "_", worker.host)
        name = f"{host}~{worker.pid}~{worker.token}~{secrets.token_hex(4)}.jsonl"
        self.path = folder / name
        self._sync = sync or FlushToSystem()
        self._file = self.path.open("a", encoding="utf-8")
        self._lines = 0

    def append(self, op: Op) -> None:
        """Write one operation (raises OSError if the disk refuses)."""
        self._file.write(encode_op(op))
        self._sync(self._file)
        self._lines += 1

    def clear(self) -> None:
        """Forget every line (everything in it reached the database or the spool)."""
        if self._lines:
            self._file.truncate(0)
            self._lines = 0

    def close(self) -> None:
        """Close and remove the (empty) journal; a non-empty one is left for recovery."""
        self._file.close()
        if not self._lines:
            self.path.unlink(missing_ok=True)


def orphaned_journals(directory: Path, is_dead: Callable[[WorkerId, Path], bool]) -> list[Path]:
    """Journal files in ``directory`` left by dead workers, oldest first.

    Args:
        directory: The data folder.
        is_dead: Whether a journal's worker is dead (given the worker and its file).
    """
    folder = Path(directory) / JOURNAL_DIR
    if not folder.is_dir():
        return []
    found: list[Path] = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match is None:
            continue
        worker = WorkerId(match["host"], int(match["pid"]), match["token"])
        if is_dead(worker, path):
            found.append(path)
    return sorted(found, key=lambda p: p.stat().st_mtime)


def read_journal(path: Path, on_bad_line: Callable[[str], None]) -> list[Op]:
    """A journal's operations in order (a torn last line goes to ``on_bad_line``)."""
    ops = read_ops(path, on_bad_line, skip_blank=True)
    if ops:
        logger.info(f"call records: {len(ops)} operation(s) recovered from a stopped process")
    return ops
