"""Build the campaign runner from settings, for the server and ``callagent worker``.

Both build the same runner on the same queue (``CALLAGENT_QUEUE_URL``) and database, so a
task enqueued by one is run by any. The campaign store and the dialler are its parts
(:class:`RunnerParts`); :data:`default_parts` builds the shipped ones. Processes that run
no runner (``callagent campaign``) still tell the queue about a campaign
(:func:`campaign_kicker`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger
from sqlalchemy import Engine

from bot.outbound.claiming_dialer import ClaimingDialer
from bot.outbound.consumer import InProcessConsumer
from bot.outbound.loop_bridge import LoopBridge
from bot.outbound.ports import AttemptPlacer, CampaignRunnerStore
from bot.outbound.runner import CampaignRunner, RunnerTiming, enqueue_kick
from bot.outbound.server import attempt_tokens, make_twilio_dialer, twilio_dial_problem
from bot.outbound.sip_dialer import sip_failure_retryable
from bot.outbound.sip_plan import campaign_sip_problem, make_sip_dialer
from bot.settings import Settings
from integrations.outbound.campaigns import CampaignStore
from integrations.outbound.queue import make_huey
from integrations.outbound.store import Attempt, OutboundStore


class OutboundUnavailable(RuntimeError):
    """This build cannot run campaigns (its campaign store or dialler is missing)."""


@dataclass(frozen=True)
class RunnerParts:
    """The campaign store and the dialler a runner works with."""

    store: CampaignRunnerStore
    dialer: AttemptPlacer


PartsFactory = Callable[[Settings, Engine], RunnerParts]


def campaign_dial_problem(settings: Settings) -> str | None:
    """Why campaigns cannot dial with these settings, naming what to set (None: they can).

    Over SIP (``CALLAGENT_CAMPAIGN_CHANNEL=sip``) the dial server checks its own SIP
    settings when asked; here only the shared secret the requests are signed with.
    """
    if settings.campaign_channel == "sip":
        problem = campaign_sip_problem(settings)
        return None if problem is None else f"campaigns cannot dial: {problem}"
    problem = twilio_dial_problem(settings)
    if problem is None and not settings.public_url:
        problem = "campaigns need CALLAGENT_PUBLIC_URL (where Twilio reaches this server)"
    if problem is None:
        return None
    return f"campaigns cannot dial: {problem}; they are stored and start once it is set"


def make_dialer(settings: Settings, engine: Engine) -> AttemptPlacer:
    """The dialler campaigns place their attempts with.

    Twilio ``calls.create`` (the answer and callback URLs are the server's public ones, so
    a worker on another host dials the same way the server does), or over SIP
    (``CALLAGENT_CAMPAIGN_CHANNEL=sip``) a request to the server holding the SIP endpoint.

    Raises:
        OutboundUnavailable: Twilio or the public URL is not configured (names the settings).
    """
    problem = campaign_dial_problem(settings)
    if problem is not None:
        raise OutboundUnavailable(problem)
    if settings.campaign_channel == "sip":
        dialer = make_sip_dialer(settings, attempt_tokens(settings))
        return ClaimingDialer(OutboundStore(engine), dialer, settings.public_url)
    return ClaimingDialer(OutboundStore(engine), make_twilio_dialer(settings), settings.public_url)


def default_parts(settings: Settings, engine: Engine) -> RunnerParts:
    """The shipped campaign store and the dialler of :func:`make_dialer`.

    Raises:
        OutboundUnavailable: No dialler in this build.
    """
    store = CampaignStore(engine, channel=settings.campaign_channel)
    return RunnerParts(store, make_dialer(settings, engine))


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


class CampaignAttemptEnds:
    """Puts a campaign attempt's end on the queue (an ``AttemptListener``).

    There ``attempt_ended`` applies the retry rules and sends the result webhook.

    A failed dial with a Twilio error code was retried already where that could help
    (the REST retry policy), so only failures without a code count as retryable, and SIP
    attempts whose INVITE got a 503 (see ``sip_failure_retryable``).
    """

    def __init__(self, runner: CampaignRunner) -> None:
        """Enqueue on ``runner``'s queue."""
        self._runner = runner

    async def attempt_ended(self, attempt: Attempt) -> None:
        """Enqueue ``attempt_ended`` for a campaign's attempt (single calls have no rules)."""
        if attempt.campaign_id is None:
            return
        retryable = sip_failure_retryable(attempt.channel, attempt.error_code)
        await asyncio.to_thread(self._runner.attempt_ended, attempt.id, retryable)


def campaign_kicker(settings: Settings) -> Callable[[str], None]:
    """Tells the settings' queue a campaign was created or resumed (for the CLI).

    The kick is enqueued; the server or a ``callagent worker`` consuming the queue fills
    the campaign's free slots. When the queue cannot be reached, the campaign still runs:
    the workers' reconcile finds its due contacts within a minute.
    """

    def kick(campaign_id: str) -> None:
        _tell_queue(
            campaign_id, lambda: enqueue_kick(make_huey(settings.campaign_queue_url), campaign_id)
        )

    return kick


def _tell_queue(campaign_id: str, enqueue: Callable[[], object]) -> None:
    try:
        enqueue()
    except Exception as e:  # the campaign is stored; only the nudge is lost
        logger.warning(
            f"campaign {campaign_id}: the job queue could not be told ({type(e).__name__}); "
            "the workers' reconcile picks it up within a minute"
        )


@dataclass
class ServerQueue:
    """The server's handle on the campaign queue: enqueue always, consume if in-process."""

    runner: CampaignRunner
    consumer: InProcessConsumer | None

    def kick(self, campaign_id: str) -> None:
        """Fill the campaign's free slots soon (on create and resume)."""
        _tell_queue(campaign_id, lambda: self.runner.kick_campaign(campaign_id))

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
