"""Graceful drain: stop taking calls, let the live ones finish, end the rest politely.

On SIGTERM (a deploy, a PaaS restart, a recycled worker) :meth:`Drain.run`:

1. stops admitting: new calls are refused as over the cap (the phone as the agent file's
   ``when_full`` says, WebRTC 503) and ``/readyz`` answers 503, so a load balancer sends
   calls elsewhere; the media stream of a phone call answered just before still gets its
   slot (``bot/web/admission.py``); the in-process campaign consumer stops taking dials;
2. waits up to ``CALLAGENT_DRAIN_SECS`` for the live calls to end by themselves;
3. ends each call still running as the agent file's ``when_stopping`` says: ``transfer``
   hands it to a person as an escalation does (:class:`~processors.frames.HandOffNowFrame`:
   the hand-off line, the summary, ``transfer.target``) where the call can be transferred
   (a Twilio call with the REST credentials, a Daily dial-in, a SIP trunk call: REFER),
   else the goodbye line and a hang-up; and waits up to :data:`END_GRACE_S` for them to go.

What is left then is cancelled by the app's own shutdown, which flushes the call records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from loguru import logger
from pipecat.frames.frames import EndWorkerFrame, TTSSpeakFrame

from bot.call.live_calls import LiveCall
from bot.call.runtime import Runtime
from bot.web.admission import Admission
from processors.frames import HandOffNowFrame

END_GRACE_S = 30.0
"""After the drain time, how long the goodbyes and hand-offs may take."""

POLL_S = 0.2


class Drain:
    """Drains one server process (see the module).

    Args:
        admission: The process's admission (it stops admitting).
        runtime: The runtime whose live calls are drained.
        busy: Calls (and call slots) held now: the drain ends when this is 0.
        drain_secs: ``CALLAGENT_DRAIN_SECS``.
        end_grace_s: How long the goodbyes and hand-offs may take.
        stop_dialing: Stops placing new outbound calls (the in-process campaign consumer),
            run beside the drain.
    """

    def __init__(
        self,
        admission: Admission,
        runtime: Runtime,
        busy: Callable[[], int],
        *,
        drain_secs: float,
        end_grace_s: float = END_GRACE_S,
        stop_dialing: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self._admission = admission
        self._runtime = runtime
        self._busy = busy
        self._drain_secs = drain_secs
        self._end_grace_s = end_grace_s
        self._stop_dialing = stop_dialing
        self._task: asyncio.Task[None] | None = None

    @property
    def draining(self) -> bool:
        """Whether the drain has begun (the process takes no new calls)."""
        return self._task is not None or not self._admission.admitting

    async def run(self) -> None:
        """Drain (once; a second call waits for the first)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="drain")
        await asyncio.shield(self._task)

    async def _run(self) -> None:
        self._admission.stop_admitting()
        dialing = (
            asyncio.create_task(self._stop_dialing(), name="stop-dialing")
            if self._stop_dialing is not None
            else None
        )
        try:
            await self._drain()
        finally:
            if dialing is not None:
                await asyncio.gather(dialing, return_exceptions=True)

    async def _drain(self) -> None:
        logger.info(
            f"draining: {self._busy()} call(s) live, new calls refused; they may go on for "
            f"up to {self._drain_secs:g} s (CALLAGENT_DRAIN_SECS)"
        )
        if await self._until_idle(self._drain_secs):
            logger.info("drained: no call left")
            return
        left = self._runtime.live.all()
        logger.warning(f"drain time is up: ending {len(left)} call(s) as the agent file says")
        for call in left:
            try:
                await self._end(call)
            except Exception as e:  # noqa: BLE001 - one call's end must not keep the others on
                logger.bind(call_id=call.call_id).warning(
                    f"server stopping: the call could not be ended ({type(e).__name__}); "
                    "it is cancelled with the rest"
                )
        if await self._until_idle(self._end_grace_s):
            logger.info("drained: the last calls were handed off or ended")
        else:
            logger.warning(f"{self._busy()} call(s) still live after the goodbyes: cancelled")

    async def _until_idle(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self._busy() > 0:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_S)
        return True

    async def _end(self, call: LiveCall) -> None:
        """Hand the call to a person, or say goodbye and hang up (``when_stopping``)."""
        try:
            runtime = self._runtime.for_agent(call.agent)
        except ValueError:
            runtime = self._runtime
        stopping = runtime.agent.when_stopping
        if stopping.action == "transfer" and can_transfer(runtime, call):
            logger.bind(call_id=call.call_id).info("server stopping: handing the call off")
            await call.worker.queue_frame(HandOffNowFrame(reason="the server is shutting down"))
            return
        logger.bind(call_id=call.call_id).info("server stopping: saying goodbye")
        await call.worker.queue_frames(
            [
                TTSSpeakFrame(stopping.line, append_to_context=True),
                EndWorkerFrame(reason="server stopping"),
            ]
        )


def can_transfer(runtime: Runtime, call: LiveCall) -> bool:
    """Whether the call can go to a person (as ``bot/call/handoff.py`` transfers it)."""
    target = runtime.agent.transfer.target
    settings = runtime.settings
    if not target:
        return False
    if call.transport_kind == "twilio":
        return bool(
            settings.twilio_account_sid and settings.twilio_auth_token and call.provider_call_id
        )
    if call.transport_kind == "sip":  # a REFER on our own trunk
        return True
    return call.transport_kind == "daily" and hasattr(call.transport, "sip_refer")
