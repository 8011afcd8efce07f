"""Consuming the campaign queue: huey's consumer, in a worker process or inside the server.

``callagent worker`` runs huey's :class:`~huey.consumer.Consumer` as huey means it to run
(signals, worker health checks, graceful stop on SIGTERM). ``callagent serve`` on the
embedded default runs the same consumer's scheduler and worker threads in its own
process, without touching the server's signal handling, and stops them with the server.
"""

from __future__ import annotations

import logging
import sys

from huey import Huey
from huey.consumer import Consumer
from loguru import logger

from bot.outbound.runner import CampaignRunner

SHUTDOWN_TIMEOUT_S = 20.0
MAX_POLL_DELAY_S = 1.0
"""An idle worker polls the queue at least this often (huey's default of 10 s would delay
a dial enqueued after a quiet spell; SQLite storage cannot block waiting for a job)."""


def make_consumer(huey: Huey, workers: int) -> Consumer:
    """The huey consumer for the campaign queue: ``workers`` threads plus its scheduler."""
    return huey.create_consumer(
        workers=workers,
        worker_type="thread",
        periodic=True,
        initial_delay=0.05,
        backoff=1.15,
        max_delay=MAX_POLL_DELAY_S,
        scheduler_interval=1,
        check_worker_health=True,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        graceful_signal="TERM",  # a platform's stop signal lets running tasks finish
    )


def huey_logs_to_stderr(level: int = logging.WARNING) -> None:
    """Show huey's warnings and errors (it logs with the standard library) on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s | %(levelname)-8s | %(name)s - %(message)s")
    )
    huey_logger = logging.getLogger("huey")
    huey_logger.handlers[:] = [handler]
    huey_logger.setLevel(level)
    huey_logger.propagate = False


def run_worker(runner: CampaignRunner, workers: int) -> None:
    """Consume the queue in this process until SIGTERM or SIGINT (blocks)."""
    consumer = make_consumer(runner.huey, workers)
    runner.reconcile()  # once at start: pick up what a killed worker left
    logger.info(f"campaign worker: {workers} threads on the {type(runner.huey).__name__} queue")
    consumer.run()


class InProcessConsumer:
    """The consumer's threads inside the server process (its signals stay the server's)."""

    def __init__(self, runner: CampaignRunner, workers: int):
        self.runner = runner
        self.consumer = make_consumer(runner.huey, workers)
        self._started = False

    def start(self) -> None:
        """Start the scheduler and worker threads, and reconcile once."""
        self.consumer.scheduler.start()
        for _worker, thread in self.consumer.worker_threads:
            thread.start()
        self._started = True
        self.runner.reconcile()

    def stop(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
        """Let running tasks finish (up to ``timeout_s``) and stop the threads."""
        if not self._started:
            return
        self._started = False
        self.consumer.shutdown_timeout = timeout_s
        self.consumer.stop(graceful=True)
