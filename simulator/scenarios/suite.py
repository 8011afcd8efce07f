"""Runs a set of scenarios against one target, a few calls at a time, with progress."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from simulator.scenarios.results import CallResult, StepResult
from simulator.scenarios.runner import ScenarioCall, prepare_audio, write_recording
from simulator.scenarios.scenario import Scenario
from simulator.target import Target


@dataclass
class SuiteOptions:
    """How to run the scenarios.

    Parameters:
        concurrency: Calls in flight at once.
        repeat: Times each scenario is called.
        recordings_dir: Where the stereo WAV of each call goes (None: not kept).
    """

    concurrency: int = 1
    repeat: int = 1
    recordings_dir: Path | None = None


async def run_suite(
    scenarios: list[Scenario],
    target: Target,
    options: SuiteOptions,
    *,
    on_step: Callable[[StepResult], None] | None = None,
    on_call: Callable[[CallResult], None] | None = None,
) -> list[CallResult]:
    """Call every scenario ``options.repeat`` times; results in scenario order.

    Args:
        scenarios: The scenarios.
        target: The agent.
        options: Concurrency, repeats and recordings.
        on_step: Called as each step (and each greeting) finishes.
        on_call: Called as each call is fully checked.
    """
    jobs = [(s, run) for run in range(1, options.repeat + 1) for s in scenarios]
    audio = {}
    for scenario in scenarios:
        audio[scenario.path] = await asyncio.to_thread(prepare_audio, scenario)
    gate = asyncio.Semaphore(max(1, options.concurrency))
    results: list[CallResult | None] = [None] * len(jobs)

    async with httpx.AsyncClient() as http:

        async def one(i: int, scenario: Scenario, run: int) -> None:
            async with gate:
                call = ScenarioCall(
                    scenario, target, audio[scenario.path], http=http, run=run, on_step=on_step
                )
                result = await call.run()
                if options.recordings_dir is not None and call.call is not None:
                    suffix = f"-{run}" if options.repeat > 1 else ""
                    path = options.recordings_dir / f"{scenario.id}{suffix}.wav"
                    await asyncio.to_thread(write_recording, call.call, path)
                    result.recording = str(path)
                results[i] = result
                if on_call is not None:
                    on_call(result)

        await asyncio.gather(*(one(i, s, run) for i, (s, run) in enumerate(jobs)))
    return [r for r in results if r is not None]


def total_steps(scenarios: list[Scenario], repeat: int = 1) -> int:
    """Progress units of a run: each step plus each greeting."""
    return sum(len(s.steps) + 1 for s in scenarios) * repeat
