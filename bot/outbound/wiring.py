"""Build the campaign runner from settings, for the server and ``callagent worker``.

Both build the same runner on the same queue (``CALLAGENT_QUEUE_URL``) and database, so a
task enqueued by one is run by any. The campaign store and the dialler are its parts
(:class:`RunnerParts`); :data:`default_parts` builds the shipped ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger
from sqlalchemy import Engine

from bot.outbound.consumer import InProcessConsumer
from bot.outbound.loop_bridge import LoopBridge
from bot.outbound.ports import CampaignRunnerStore, Dialer
from bot.outbound.runner import CampaignRunner, RunnerTiming
from bot.settings import Settings
from integrations.outbound.queue import make_huey
from integrations.outbound.store import OutboundStore


class OutboundUnavailable(RuntimeError):
    """This build cannot run campaigns (its campaign store or dialler is missing)."""


@dataclass(frozen=True)
class RunnerParts:
    """The campaign store and the dialler a runner works with."""

    store: CampaignRunnerStore
    dialer: Dialer


PartsFactory = Callable[[Settings, Engine], RunnerParts]


def default_parts(settings: Settings, engine: Engine) -> RunnerParts:
    """The shipped campaign store and Twilio/browser dialler.

    Raises:
        OutboundUnavailable: Not in this build yet (they are wired with issue 17's merge).
    """
    raise OutboundUnavailable("campaign store and dialler not wired in this build")


def timing_from(settings: Settings) -> RunnerTiming:
    """The runner's timing from the settings."""
    return RunnerTiming(
        stale_dial_s=settings.queue_stale_dial_secs,
        webhook_tries=settings.result_webhook_tries,
        webhook_retry_s=settings.result_webhook_retry_secs,
    )


def build_runner(
    settings: Settings,
    engine: Engine,
    loop: LoopBridge,
    *,
    parts: PartsFactory = default_parts,
) -> CampaignRunner:
    """The campaign runner on the settings' queue and ``engine``'s database (migrated).

    Raises:
        OutboundUnavailable: ``parts`` cannot be built in this build.
    """
    built = parts(settings, engine)
    return CampaignRunner(
        make_huey(settings.campaign_queue_url),
        built.store,
        OutboundStore(engine),
        built.dialer,
        loop,
        webhook_secret=settings.result_webhook_secret,
        timing=timing_from(settings),
    )


@dataclass
class ServerQueue:
    """The server's handle on the campaign queue: enqueue always, consume if in-process."""

    runner: CampaignRunner
    consumer: InProcessConsumer | None

    async def stop(self) -> None:
        """Stop the in-process consumer (running tasks finish first)."""
        if self.consumer is not None:
            await asyncio.to_thread(self.consumer.stop)


async def start_server_queue(
    settings: Settings, engine: Engine, *, parts: PartsFactory = default_parts
) -> ServerQueue | None:
    """The campaign queue for ``callagent serve`` (None: this build cannot run campaigns).

    With ``CALLAGENT_QUEUE_IN_PROCESS`` (the default) the server also consumes the queue
    in ``CALLAGENT_QUEUE_WORKERS`` threads; the dialler's coroutines run on this loop.
    """
    try:
        runner = build_runner(settings, engine, LoopBridge(asyncio.get_running_loop()), parts=parts)
    except OutboundUnavailable as e:
        logger.info(f"campaign queue not started: {e}")
        return None
    consumer = None
    if settings.queue_in_process:
        consumer = InProcessConsumer(runner, settings.queue_workers)
        await asyncio.to_thread(consumer.start)
        logger.info(f"campaign queue: {settings.queue_workers} worker threads in this process")
    return ServerQueue(runner, consumer)
