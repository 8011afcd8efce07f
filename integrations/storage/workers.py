"""Which server process owns a call, and whether that process is still alive.

Every server process is a *worker* with an identity (host, pid and a random token
drawn once per process, so a restarted process that gets the same pid, as in a
container, is still a new worker). The calls a worker opens carry its id, and its
writer thread keeps a heartbeat row in the ``workers`` table. A worker is taken for
dead when its heartbeat is older than the stale limit, or, from the same host, when
its pid is gone (or is this very process under an earlier token). A live peer
sharing the database keeps a fresh heartbeat, so its calls are never touched.

So a peer on another host closes a dead worker's calls at most ``stale_secs +
sweep_secs`` (1.5 x the stale limit) after the dead worker's last heartbeat; a
process restarted on the same host (same pid namespace) does at its start.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, delete, select

from integrations.storage.dialects import dialect_support
from integrations.storage.models import Base, Worker
from integrations.storage.records import utcnow

WORKERS = Base.metadata.tables[Worker.__tablename__]
HEARTBEAT_SECS = 10.0
STALE_SECS = 60.0
_PROCESS_TOKEN = secrets.token_hex(6)
_HOST_NAME: list[str] = []
"""This host's name when the deployment names it (:func:`name_this_host`)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")


@dataclass(frozen=True)
class WorkerId:
    """A server process: ``host:pid:token``."""

    host: str
    pid: int
    token: str

    @classmethod
    def current(cls) -> WorkerId:
        """This process (the token is drawn once per process)."""
        return cls(this_host(), os.getpid(), _PROCESS_TOKEN)

    @classmethod
    def parse(cls, text: str) -> WorkerId | None:
        """A worker id back from its text (None if it is not one)."""
        parts = text.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2])

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"


def name_this_host(name: str) -> None:
    """Name this host in worker ids from now on ("": its host name and pid namespace).

    Processes whose ids name the same host judge each other by pid, so a name must
    stand for one pid namespace (one machine or container) at a time.
    """
    _HOST_NAME[:] = [_UNSAFE.sub("_", name)] if name else []


def this_host() -> str:
    """Where this process's pid means something: the host name and its pid namespace.

    Containers that share the host's name (host networking) each have their own
    pids; naming the pid namespace keeps one from judging another's pids. A name
    given by :func:`name_this_host` wins.
    """
    if _HOST_NAME:
        return _HOST_NAME[0]
    host = _UNSAFE.sub("_", socket.gethostname() or "localhost")
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return host
    digits = re.sub(r"\D", "", namespace)
    return f"{host}_ns{digits}" if digits else host


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


@dataclass
class Liveness:
    """Decides, from this worker's point of view, whether another worker is dead.

    Parameters:
        me: This process.
        stale_secs: A heartbeat older than this means the worker is gone.
    """

    me: WorkerId
    stale_secs: float = STALE_SECS

    def is_dead(self, worker: WorkerId, last_seen: datetime | None, now: datetime) -> bool:
        """Whether ``worker`` (last heard of at ``last_seen``; None: unknown) is dead."""
        if worker == self.me:
            return False
        if worker.host == self.me.host:
            if worker.pid == self.me.pid or not pid_alive(worker.pid):
                return True  # an earlier life of this pid, or a pid that is gone
        if last_seen is None:
            return False  # another host, never heard of: its heartbeat decides later
        return last_seen < now - timedelta(seconds=self.stale_secs)


@dataclass
class WorkerConfig:
    """A server process's worker identity and timing.

    Parameters:
        id: This process.
        heartbeat_secs: How often its heartbeat is written.
        stale_secs: A peer silent this long is dead (several heartbeats).
    """

    id: WorkerId = field(default_factory=WorkerId.current)
    heartbeat_secs: float = HEARTBEAT_SECS
    stale_secs: float = STALE_SECS

    @property
    def sweep_secs(self) -> float:
        """How often dead workers' calls are looked for."""
        return self.stale_secs / 2


class WorkerRegistry:
    """The ``workers`` table: this worker's heartbeat, and its peers' last signs of life."""

    def __init__(self, engine: Engine, liveness: Liveness):
        """Keep ``liveness.me``'s heartbeat in ``engine``'s database."""
        self.engine = engine
        self.liveness = liveness
        self.started_at = utcnow()

    @property
    def me(self) -> WorkerId:
        """This worker."""
        return self.liveness.me

    def heartbeat(self) -> None:
        """Record that this worker is alive (run every few seconds by the writer thread).

        The time is the database's: peers on other hosts judge it by that clock too
        (:meth:`now`), so hosts' clocks need not agree.
        """
        with self.engine.begin() as conn:
            support = dialect_support(conn)
            values = {
                "id": str(self.me),
                "host": self.me.host[:255],
                "pid": self.me.pid,
                "started_at": self.started_at,
                "last_seen": support.now(conn),
            }
            conn.execute(support.upsert(WORKERS, values, ["id"], ["last_seen"]))

    def now(self) -> datetime:
        """The database's clock, which heartbeats are written by (this host's if it is down)."""
        try:
            with self.engine.connect() as conn:
                return dialect_support(conn).now(conn)
        except Exception:  # noqa: BLE001 - database down: only same-host pids can tell
            return utcnow()

    def last_seen(self) -> dict[str, datetime]:
        """Every known worker's last heartbeat."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(WORKERS.c.id, WORKERS.c.last_seen)).all()
        return {row.id: row.last_seen for row in rows}

    def forget(self, worker_ids: list[str]) -> None:
        """Drop dead workers' rows (once nothing of theirs is left open)."""
        if worker_ids:
            with self.engine.begin() as conn:
                conn.execute(delete(WORKERS).where(WORKERS.c.id.in_(worker_ids)))

    def retire(self) -> None:
        """This worker stops cleanly: drop its row."""
        self.forget([str(self.me)])
