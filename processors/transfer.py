"""The warm transfer: hold audio, the summary to the agent's desktop, then the hand-off.

On an :class:`~processors.frames.EscalationFrame` the transfer processor

1. waits until the hand-off line has been spoken (the action hold,
   :mod:`processors.action_hold`, may have waited already) and, on the phone, played out
   at the caller's end, so the redirect never cuts it;
2. plays hold music in-stream, so the caller never hears silence while the transfer
   connects;
3. delivers the summary to the agent's desktop first (signed screen-pop webhook, with
   retries and an idempotency key), when one is configured;
4. performs the transfer with the call's transfer method
   (:mod:`processors.transfer_methods`: Twilio redirect to Dial TwiML with a whisper, an
   RTVI hand-off message to the browser, a Daily SIP REFER, a REFER on our own SIP trunk);
5. on failure stops the hold music, says so, offers a callback, and records the failure.

The result goes out as a :class:`~processors.frames.TransferResultFrame` (downstream for the
call record, upstream for the escalation, callback-offer and CRM processors). While the
transfer is under way, bot lines from upstream are dropped. Log lines carry ids, the
method, the outcome and timings only.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    OutputAudioRawFrame,
    TTSSpeakFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor, FrameProcessorSetup

from integrations.hold_audio import hold_music_chunk
from integrations.screen_pop import DeliveryResult, ScreenPopClient
from processors.agent_definition import TransferConfig
from processors.frames import BotReplyFrame, EscalationFrame, TransferResultFrame
from processors.transfer_methods import (
    CallRedirector,
    DailySipRefer,
    Handoff,
    NoTransfer,
    PushFrame,
    ReferAnswer,
    SipRefer,
    TransferMethod,
    TransferOutcome,
    TwilioRedirect,
    WebRTCHandoffMessage,
)

HOLD_CHUNK_S = 0.1
HOLD_LEAD_S = 0.3
"""Hold audio queued ahead of real time (keeps the stream fed without a big backlog)."""
LINE_TIMEOUT_S = 20.0
"""Longest wait for the hand-off line to be spoken."""
RESUME_GRACE_S = 0.25
"""A bot that starts speaking again this soon after stopping is still saying the line."""


class TransferProcessor(FrameProcessor):
    """Carries out the hand-off the escalation processor decided on."""

    def __init__(
        self,
        method: TransferMethod,
        config: TransferConfig,
        *,
        call_id: str,
        screen_pop: ScreenPopClient | None = None,
        playout_remaining: Callable[[], float] | None = None,
        **kwargs: Any,
    ):
        """Configure the transfer.

        Args:
            method: How this call's transport transfers.
            config: The agent's transfer settings (lines, hold limit).
            call_id: For the idempotency key and log lines.
            screen_pop: The agent-desktop webhook (None: not configured).
            playout_remaining: Seconds of bot speech still playing at the far end (phone
                streams buffer ahead); None when what is sent is what is heard.
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._method = method
        self._config = config
        self._call_id = call_id
        self._screen_pop = screen_pop
        self._playout_remaining = playout_remaining
        self._sample_rate = 16000
        self._speaking = False
        self._stops = 0
        self._starts = 0
        self._speech = asyncio.Event()
        self._busy = False
        self._task: asyncio.Task[None] | None = None
        self._hold: asyncio.Task[None] | None = None
        self._attempts = 0
        self._line_heard_at: float | None = None
        self.result: TransferResultFrame | None = None
        """The last transfer's result (None until one finishes)."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Start transfers; track the bot's speech; silence bot lines while transferring."""
        await super().process_frame(frame, direction)
        if isinstance(frame, BotStartedSpeakingFrame):
            self._speaking = True
            self._starts += 1
            self._speech.set()
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._speaking = False
            self._stops += 1
            self._speech.set()
        if (
            direction is FrameDirection.DOWNSTREAM
            and self._busy
            and isinstance(
                frame,
                TTSSpeakFrame
                | BotReplyFrame
                | LLMTextFrame
                | LLMFullResponseStartFrame
                | LLMFullResponseEndFrame,
            )
        ):
            return
        await self.push_frame(frame, direction)
        if (
            direction is FrameDirection.DOWNSTREAM
            and isinstance(frame, EscalationFrame)
            and not isinstance(frame, TransferResultFrame)
            and not self._busy
        ):
            self._busy = True
            self._task = self.create_task(self._run(frame), name="transfer")

    async def setup(self, setup: FrameProcessorSetup) -> None:
        """Learn the call's output rate (hold music is rendered at it)."""
        await super().setup(setup)
        self._sample_rate = setup.audio_out_sample_rate or self._sample_rate

    async def cleanup(self) -> None:
        """Stop hold music and any transfer in flight."""
        await super().cleanup()
        for task in (self._hold, self._task):
            if task is not None and not task.done():
                task.cancel()

    async def _run(self, escalation: EscalationFrame) -> None:
        triggered = time.perf_counter()
        self._attempts += 1
        handoff = Handoff(
            call_id=self._call_id,
            trigger=escalation.trigger,
            summary=escalation.summary,
            idempotency_key=hashlib.sha256(
                f"{self._call_id}:handoff:{self._attempts}".encode()
            ).hexdigest()[:32],
        )
        self._line_heard_at = None
        await self._wait_for_line(heard=escalation.line_heard)
        line_heard_at = self._line_heard_at or self._playout_deadline()
        self._start_hold()  # (already playing unless the line was never heard)
        delivered: bool | None = None
        pop_ms: float | None = None
        if self._screen_pop is not None:
            result = await self._deliver_screen_pop(handoff)
            delivered = result.delivered
            pop_ms = float(result.elapsed_ms) if result.delivered else None
        wait = line_heard_at - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        ready = time.perf_counter()
        outcome = await self._method.transfer(handoff, self.push_frame)
        done = time.perf_counter()
        elapsed = round((done - triggered) * 1000, 1)
        logger.info(
            f"transfer via {self._method.name} "
            f"{'requested' if outcome.ok else 'failed'} {elapsed} ms after the trigger "
            f"(hand-off line heard {round((line_heard_at - triggered) * 1000)} ms, "
            f"request {round((done - ready) * 1000, 1)} ms)"
            + (f" ({outcome.error})" if outcome.error else "")
        )
        timings = {
            "line_heard_ms": float(round((line_heard_at - triggered) * 1000)),
            "request_ms": round((done - ready) * 1000, 1),
            "screen_pop_ms": pop_ms,
        }
        if outcome.ok and outcome.keep_holding:
            # The caller stays with us (hold music) until a person takes over or time runs out.
            await self._finish(escalation, outcome, elapsed, delivered, timings)
            await asyncio.sleep(self._config.max_hold_secs)
            outcome = TransferOutcome(
                False, f"nobody took the call within {self._config.max_hold_secs:g} s"
            )
            logger.info(f"transfer failed ({outcome.error})")
        await self._stop_hold()
        await self._finish(escalation, outcome, elapsed, delivered, timings)

    async def _finish(
        self,
        escalation: EscalationFrame,
        outcome: TransferOutcome,
        elapsed: float,
        delivered: bool | None,
        timings: dict[str, float | None] | None = None,
    ) -> None:
        timings = timings or {}
        result = TransferResultFrame(
            trigger=escalation.trigger,
            reason=escalation.reason,
            transfer_result="transferred" if outcome.ok else f"failed: {outcome.error}",
            ok=outcome.ok,
            method=self._method.name,
            error=outcome.error,
            trigger_to_request_ms=elapsed,
            screen_pop_delivered=delivered,
            line_heard_ms=timings.get("line_heard_ms"),
            request_ms=timings.get("request_ms"),
            screen_pop_ms=timings.get("screen_pop_ms"),
        )
        self.result = result
        if not outcome.ok:
            self._busy = False
            line = " ".join(
                p for p in (self._config.failure_line, self._config.callback_offer) if p
            )
            await self.push_frame(BotReplyFrame(text=line, intent="transfer_failed"))
            await self.push_frame(TTSSpeakFrame(line, append_to_context=True))
        await self.push_frame(result)
        await self.push_frame(
            TransferResultFrame(**{k: getattr(result, k) for k in _RESULT_FIELDS}),
            FrameDirection.UPSTREAM,
        )

    async def _deliver_screen_pop(self, handoff: Handoff) -> DeliveryResult:
        assert self._screen_pop is not None
        payload = {
            "event": "callagent.handoff",
            "idempotency_key": handoff.idempotency_key,
            "summary": handoff.summary,
        }
        result = await self._screen_pop.deliver(payload, handoff.idempotency_key)
        logger.info(
            f"screen pop {'delivered' if result.delivered else 'failed'} "
            f"after {result.attempts} attempt(s) in {result.elapsed_ms} ms"
            + (f" ({result.error})" if result.error else "")
        )
        return result

    def _playout_deadline(self) -> float:
        """When the speech sent so far will have been heard at the far end."""
        playout = self._playout_remaining() if self._playout_remaining else 0.0
        return time.perf_counter() + playout

    async def _wait_for_line(self, *, heard: bool = False) -> None:
        """Until the bot stops speaking (the hand-off line) and does not resume at once.

        Args:
            heard: The bot has stopped after the line already (the action hold waited for
                it): only whether it resumes at once is waited for.
        """
        deadline = time.perf_counter() + LINE_TIMEOUT_S
        target = self._stops + (0 if heard else 1)
        while time.perf_counter() < deadline:
            while self._stops < target:
                self._speech.clear()
                try:
                    await asyncio.wait_for(self._speech.wait(), deadline - time.perf_counter())
                except TimeoutError:
                    logger.warning("hand-off line not heard; going on")
                    return
            # Hold music starts at once (the phone still plays the line from its buffer);
            # if the bot resumes (the line had a pause), it waits for the line to end.
            self._line_heard_at = self._playout_deadline()
            self._start_hold()
            starts = self._starts
            self._speech.clear()
            try:
                await asyncio.wait_for(self._speech.wait(), RESUME_GRACE_S)
            except TimeoutError:
                return
            if self._starts == starts:
                return
            await self._stop_hold()
            target = self._stops + 1

    def _start_hold(self) -> None:
        if self._hold is None:
            self._hold = self.create_task(self._play_hold(), name="hold-music")

    async def _stop_hold(self) -> None:
        task, self._hold = self._hold, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _play_hold(self) -> None:
        position = 0
        started = time.perf_counter()
        sent_s = 0.0
        while True:
            chunk, position = hold_music_chunk(self._sample_rate, position, HOLD_CHUNK_S)
            await self.push_frame(
                OutputAudioRawFrame(audio=chunk, sample_rate=self._sample_rate, num_channels=1)
            )
            sent_s += HOLD_CHUNK_S
            ahead = sent_s - (time.perf_counter() - started)
            if ahead > HOLD_LEAD_S:
                await asyncio.sleep(ahead - HOLD_LEAD_S)


_RESULT_FIELDS = (
    "trigger",
    "reason",
    "transfer_result",
    "ok",
    "method",
    "error",
    "trigger_to_request_ms",
    "screen_pop_delivered",
    "line_heard_ms",
    "request_ms",
    "screen_pop_ms",
)

__all__ = [
    "PushFrame",
    "Handoff",
    "TransferOutcome",
    "TransferMethod",
    "CallRedirector",
    "TwilioRedirect",
    "WebRTCHandoffMessage",
    "DailySipRefer",
    "ReferAnswer",
    "SipRefer",
    "NoTransfer",
    "TransferProcessor",
]
