"""``callagent simulate`` for outbound scenario files: loaded beside inbound ones, and run.

A file saying ``direction: outbound`` is an outbound scenario (the agent calls a simulated
callee, :mod:`simulator.scenarios.outbound`); any other is an inbound one. Outbound calls
need the agent to dial through the simulator's fake Twilio REST API, so they run against
the agent started here (:class:`simulator.local_agent.LocalAgent`), one at a time (two
scenarios may call the same number).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import httpx

from simulator.scenarios.outbound import OutboundScenario, is_outbound, load_outbound_scenario
from simulator.scenarios.outbound_runner import OutboundResult, run_outbound_scenario
from simulator.scenarios.scenario import Scenario, ScenarioError
from simulator.scenarios.scenario_file import expand_paths, load_scenario
from simulator.target import Target

NEEDS_LOCAL_AGENT = (
    "outbound scenarios need the agent started here (it dials through the simulator's fake "
    "Twilio REST API): run them without --url"
)


def load_all(
    paths: Iterable[str | Path],
) -> tuple[list[Scenario], list[OutboundScenario], list[ScenarioError]]:
    """Inbound and outbound scenarios of the files (folders: their YAML files), and errors."""
    inbound: list[Scenario] = []
    outbound: list[OutboundScenario] = []
    errors: list[ScenarioError] = []
    for path in expand_paths(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""  # the loader names the problem
        try:
            if is_outbound(text):
                outbound.append(load_outbound_scenario(path))
            else:
                inbound.append(load_scenario(path))
        except ScenarioError as e:
            errors.append(e)
    return inbound, outbound, errors


async def run_outbound_suite(
    scenarios: list[OutboundScenario],
    target: Target,
    *,
    repeat: int = 1,
    on_result: Callable[[OutboundResult], None] | None = None,
) -> list[OutboundResult]:
    """Each scenario ``repeat`` times, one call at a time, against a target started here.

    Raises:
        ValueError: The target has no fake Twilio REST API (an agent given by ``--url``).
    """
    rest = target.fake_twilio
    if rest is None or not target.base_url or not target.operator_token:
        raise ValueError(NEEDS_LOCAL_AGENT)
    results: list[OutboundResult] = []
    async with httpx.AsyncClient() as http:
        for _ in range(repeat):
            for scenario in scenarios:
                result = await run_outbound_scenario(
                    scenario,
                    rest,
                    target.base_url,
                    target.operator_token,
                    http,
                    transcriber=target.transcriber,
                )
                results.append(result)
                if on_result is not None:
                    on_result(result)
    return results


def outbound_lines(result: OutboundResult) -> list[str]:
    """A scenario's block for the console."""
    verdict = "PASS" if result.passed else "FAIL"
    sid = result.call.sid if result.call else "-"
    head = f"{verdict}  {result.scenario_id} ({result.name}) outbound call {sid}"
    head += f", {result.duration_s:.1f} s"
    if result.error:
        head += f" - error: {result.error}"
    lines = [head]
    marks = {True: "PASS", False: "FAIL", None: "SKIP"}
    for check in result.checks:
        lines.append(f"  {marks[check.ok]}  {result.scenario_id}  {check.name}: {check.detail}")
    return lines


def outbound_summary(results: list[OutboundResult]) -> list[str]:
    """Totals for the console."""
    if not results:
        return []
    passed = sum(r.passed for r in results)
    outcomes: dict[str, int] = {}
    for r in results:
        key = str(r.attempt.get("disposition") or "-")
        outcomes[key] = outcomes.get(key, 0) + 1
    table = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
    return [f"outbound: {passed}/{len(results)} scenarios passed; dispositions: {table}"]
