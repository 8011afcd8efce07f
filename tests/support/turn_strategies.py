"""Drive a user-turn stop strategy outside a pipeline: set it up and record the turns it ends."""

from __future__ import annotations

import asyncio

from pipecat.clocks.system_clock import SystemClock
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.turns.user_stop.base_user_turn_stop_strategy import BaseUserTurnStopStrategy
from pipecat.utils.asyncio.task_manager import TaskManager


async def start_strategy(
    strategy: BaseUserTurnStopStrategy, *, audio_in_sample_rate: int = 16000
) -> list[bool]:
    """Set ``strategy`` up, start a turn, and return the list each ended turn appends to."""
    setup = FrameProcessorSetup(
        clock=SystemClock(),
        task_manager=TaskManager(loop=asyncio.get_running_loop()),
        pipeline_worker=None,  # type: ignore[arg-type]
        audio_in_sample_rate=audio_in_sample_rate,
    )
    await strategy.setup(setup)
    stopped: list[bool] = []

    @strategy.event_handler("on_user_turn_stopped")
    async def on_stopped(_strategy, *_args, **_kwargs):
        stopped.append(True)

    await strategy.handle_user_turn_started()
    return stopped
