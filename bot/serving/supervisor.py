"""``callagent serve --workers N``: N server processes on one port, kept running.

The supervisor (the parent process) binds the listening socket once and starts N worker
processes that inherit it; each loads its models, starts its app and only then accepts
from the shared socket, so no connection waits on a process that is still loading (they
queue in the kernel until a ready worker accepts). One event loop per process: give it
one worker per core.

Why one inherited socket rather than ``SO_REUSEPORT`` sockets per worker: a port that is
taken fails once, in the parent, with a clear error; connections queued on the socket
are never lost when a worker stops listening (with ``SO_REUSEPORT`` the kernel resets the
connections waiting in a closed socket's own queue: a recycled worker would drop calls);
and an idle loop accepts more, so load follows free capacity rather than a hash.

The supervisor:

- restarts a worker that died (one that dies before accepting, three times running, stops
  the whole server: its settings or models are broken, restarting cannot help);
- forwards SIGTERM/SIGINT to every worker, which drains its calls
  (:mod:`bot.serving.server`) and exits; it exits 0 when they all have (a second signal is
  forwarded too: the workers stop at once);
- recycles: a worker past ``CALLAGENT_RECYCLE_AFTER_CALLS``/``_MB`` says ``recycle``; a
  replacement starts, and once it says ``ready`` (models loaded, accepting) the old worker
  gets SIGUSR1: it stops accepting, drains and exits. A replacement that dies first is
  started again (the worker asks once), the old worker serving meanwhile.

Workers run in their own session, so a terminal's Ctrl+C reaches the supervisor alone,
which forwards it once.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from loguru import logger

from bot.serving.server import RETIRE_SIGNAL

MAX_START_FAILURES = 3
"""Workers in a row that die before accepting calls before the supervisor gives up."""

RESTART_DELAY_S = 1.0
"""Wait before restarting a worker that died (a crash loop does not spin)."""

LISTEN_BACKLOG = 2048

WorkerCommand = Callable[[int, int], list[str]]
"""The command line of a worker, given the listening socket's fd and the status pipe's fd."""


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket every worker inherits.

    Raises:
        OSError: the address is in use or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    started_at: float
    ready: bool = False
    replaces: int | None = None
    """The pid of the worker this one replaces (retired once this one is ready)."""
    replaced_by: int | None = None
    retiring: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid


class Supervisor:
    """Runs N worker processes on one listening socket (see the module).

    Args:
        command: A worker's command line (given the socket's and the pipe's fds).
        workers: How many to keep running.
        sock: The bound, listening socket (:func:`bind_socket`).
        env: The workers' environment (default: this process's).
    """

    def __init__(
        self,
        command: WorkerCommand,
        workers: int,
        sock: socket.socket,
        *,
        env: dict[str, str] | None = None,
    ) -> None:
        self._command = command
        self._count = workers
        self._sock = sock
        self._env = env
        self._workers: list[_Worker] = []
        self._signals: list[int] = []
        self._forwarded = 0
        self._failures = 0
        self._exit_code = 0
        self._read_fd, self._write_fd = os.pipe()
        os.set_inheritable(self._write_fd, True)
        self._buffer = b""

    def run(self) -> int:
        """Start the workers and keep them running until a signal; returns the exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        logger.info(
            f"supervisor {os.getpid()}: {self._count} worker processes on {_address(self._sock)}"
        )
        for _ in range(self._count):
            self._start()
        try:
            while self._workers:
                self._forward_signals()
                self._read_messages(timeout_s=0.5)
                self._reap()
        finally:
            self._sock.close()
            os.close(self._read_fd)
            os.close(self._write_fd)
        logger.info(f"supervisor {os.getpid()}: every worker has exited")
        return self._exit_code

    @property
    def stopping(self) -> bool:
        """Whether a stop signal arrived (or the supervisor gave up)."""
        return bool(self._signals)

    def pids(self) -> list[int]:
        """The workers' process ids."""
        return [w.pid for w in self._workers]

    def _on_signal(self, sig: int, _frame: FrameType | None) -> None:
        self._signals.append(sig)

    def _forward_signals(self) -> None:
        while self._forwarded < len(self._signals):
            sig = signal.SIGTERM if self._forwarded == 0 else self._signals[self._forwarded]
            self._forwarded += 1
            logger.info(f"supervisor: {signal.Signals(sig).name} to {len(self._workers)} worker(s)")
            for worker in self._workers:
                _signal(worker, sig)

    def _start(self, *, replaces: int | None = None) -> _Worker:
        fds = (self._sock.fileno(), self._write_fd)
        process = subprocess.Popen(
            self._command(*fds), pass_fds=fds, env=self._env, start_new_session=True
        )
        worker = _Worker(process, time.monotonic(), replaces=replaces)
        self._workers.append(worker)
        logger.info(
            f"supervisor: worker {worker.pid} started"
            + (f" to replace {replaces}" if replaces else "")
        )
        return worker

    def _find(self, pid: int | None) -> _Worker | None:
        return next((w for w in self._workers if w.pid == pid), None)

    def _read_messages(self, timeout_s: float) -> None:
        readable, _, _ = select.select([self._read_fd], [], [], timeout_s)
        if not readable:
            return
        self._buffer += os.read(self._read_fd, 4096)
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            kind, _, pid = line.decode(errors="replace").partition(" ")
            if pid.isdigit():
                self._on_message(kind, int(pid))

    def _on_message(self, kind: str, pid: int) -> None:
        worker = self._find(pid)
        if worker is None:
            return
        if kind == "ready":
            worker.ready = True
            self._failures = 0
            logger.info(f"supervisor: worker {pid} accepts calls")
            old = self._find(worker.replaces)
            worker.replaces = None
            if old is not None and not self.stopping:
                old.retiring = True
                logger.info(f"supervisor: worker {old.pid} retires (its replacement is ready)")
                _signal(old, RETIRE_SIGNAL)
        elif kind == "recycle" and not (self.stopping or worker.retiring or worker.replaced_by):
            worker.replaced_by = self._start(replaces=pid).pid

    def _reap(self) -> None:
        for worker in list(self._workers):
            code = worker.process.poll()
            if code is None:
                continue
            self._workers.remove(worker)
            if self.stopping or worker.retiring:
                logger.info(f"supervisor: worker {worker.pid} exited ({code})")
                continue
            replacement = self._find(worker.replaced_by)
            if replacement is not None:
                replacement.replaces = None  # it takes the place of the dead one
                logger.warning(f"supervisor: worker {worker.pid} died ({code}) while replaced")
                continue
            old = self._find(worker.replaces)
            if old is not None:
                old.replaced_by = None  # the replacement died: the old one goes on for now
            logger.warning(f"supervisor: worker {worker.pid} died ({code}); starting another")
            if not worker.ready:
                self._failures += 1
                if self._failures >= MAX_START_FAILURES:
                    logger.error(
                        f"supervisor: {self._failures} workers in a row died before accepting "
                        "calls; stopping (run `callagent serve` alone to see why)"
                    )
                    self._exit_code = 3
                    self._signals.append(signal.SIGTERM)
                    continue
            time.sleep(RESTART_DELAY_S)
            if old is None:
                self._start()
            else:  # a replacement died: another one, the old worker serving meanwhile
                old.replaced_by = self._start(replaces=old.pid).pid


def _signal(worker: _Worker, sig: int) -> None:
    try:
        worker.process.send_signal(sig)
    except ProcessLookupError:
        pass


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"
