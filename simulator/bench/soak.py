"""``callagent bench soak``: hundreds of short calls in a row; does the agent leak?

Places ``--calls`` short calls one after another over Twilio Media Streams (each: the
greeting starts, the caller talks over it with a question, the answer starts, the
caller hangs up; every fifth call presses a key instead). After every ``--every`` calls,
once no call is active, it reads the agent's resident memory, open file descriptors,
threads and asyncio tasks (``/api/diagnostics``, after a garbage collection), and at the
end reports the growth from the first sample (taken after a warm-up) to the last.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from simulator.bench import args as bench_args

MB = 1024 * 1024


def add_parser(kinds: argparse._SubParsersAction) -> None:
    """Register ``callagent bench soak``."""
    p = kinds.add_parser("soak", help="many short calls in a row: memory, descriptors, tasks")
    bench_args.add_agent_arguments(p, operator_token_for="diagnostics")
    p.add_argument("--calls", type=int, default=500, help="calls to place (500)")
    p.add_argument("--every", type=int, default=50, help="sample after this many calls (50)")
    bench_args.add_output_arguments(p)
    p.set_defaults(func=run_soak)


def run_soak(args: argparse.Namespace) -> int:
    """``callagent bench soak``."""
    return bench_args.run(args, _main)


async def _main(args: argparse.Namespace) -> int:
    from simulator.bench import kit as benchkit

    clips = await asyncio.to_thread(benchkit.clips, benchkit.QUESTIONS)
    agent = await benchkit.start_agent_for(args)
    samples: list[dict[str, Any]] = []
    failures = 0
    started = time.monotonic()
    try:
        baseline = await _sample(agent, 0)
        if baseline is None:
            print("the agent's /api/diagnostics is not readable (operator token?)", file=sys.stderr)
            return 2
        print(_line(baseline), flush=True)
        samples.append(baseline)
        texts = list(clips)
        for n in range(1, args.calls + 1):
            ok = await _short_call(agent, clips[texts[n % len(texts)]], press=n % 5 == 0)
            failures += not ok
            if n % args.every == 0 or n == args.calls:
                sample = await _sample(agent, n)
                if sample is not None:
                    sample["failed_calls"] = failures
                    samples.append(sample)
                    print(_line(sample), flush=True)
    finally:
        await agent.stop()
    result = _analyse(samples, failures, time.monotonic() - started)
    result["target"] = agent.target.label
    print()
    print(
        f"{result['calls']} calls in {result['duration_s']:.0f} s, {failures} failed; "
        f"RSS {result['rss_first_mb']:.0f} MB after {result['warm_up_calls']} calls -> "
        f"{result['rss_last_mb']:.0f} MB: {result['rss_growth_pct']:+.1f} % "
        f"({'grows' if result['rss_grows'] else 'flat'}; target < 5 %)"
    )
    print(
        f"leaks: asyncio tasks {result['tasks_delta']:+d}, file descriptors "
        f"{result['fds_delta']:+d}, threads {result['threads_delta']:+d} "
        f"(first sample after warm-up -> last, with no call active)"
    )
    benchkit.save_json(args.json, {"bench": "soak", **result, "samples": samples})
    return 0


async def _short_call(agent: Any, clip: bytes, *, press: bool) -> bool:
    from simulator.phone import CallEndedError, place_call
    from simulator.target import SIM_ACCOUNT_SID

    t = agent.target
    call = None
    try:
        call = await place_call(
            t.base_url, auth_token=t.auth_token, account_sid=SIM_ACCOUNT_SID if t.rest else None
        )
        await call.wait_for_bot_speech_start(timeout=30)
        if press:
            pressed = call.now()
            await call.press("1#")
            await call.wait_for_bot_speech_start(timeout=30, after=pressed)
        else:
            turn = await call.say(clip)  # over the greeting: a barge-in, then the answer
            await call.wait_for_bot_speech_start(timeout=30, after=turn.caller_end_s)
        await asyncio.sleep(0.3)
        return True
    except (CallEndedError, TimeoutError, OSError):
        return False
    finally:
        if call is not None:
            await call.hang_up()


async def _sample(agent: Any, calls: int) -> dict[str, Any] | None:
    deadline = time.monotonic() + 30
    while (await agent.active_calls() or 0) > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # let torn-down calls finish their cleanup
    stats = await agent.diagnostics(collect=True)
    if stats is None:
        return None
    return {
        "calls": calls,
        "rss_mb": round(stats["rss_bytes"] / MB, 1),
        "open_fds": stats["open_fds"],
        "threads": stats["threads"],
        "asyncio_tasks": stats["asyncio_tasks"],
        "gc_objects": stats.get("gc_objects"),
        "active_calls": stats["active_calls"],
    }


def _line(s: dict[str, Any]) -> str:
    return (
        f"after {s['calls']:>4} calls: RSS {s['rss_mb']:.1f} MB  fds {s['open_fds']}  "
        f"threads {s['threads']}  tasks {s['asyncio_tasks']}  objects {s['gc_objects']}"
    )


def _analyse(samples: list[dict[str, Any]], failures: int, duration: float) -> dict[str, Any]:
    """Growth from the first sample after warm-up (the first --every calls) to the last."""
    warm = samples[1] if len(samples) > 2 else samples[0]
    last = samples[-1]
    growth = 100 * (last["rss_mb"] - warm["rss_mb"]) / warm["rss_mb"] if warm["rss_mb"] else 0.0
    later = [s["rss_mb"] for s in samples[1:]]
    rising = len(later) >= 3 and all(b >= a for a, b in zip(later, later[1:], strict=False))
    return {
        "calls": last["calls"],
        "failed_calls": failures,
        "duration_s": round(duration, 1),
        "warm_up_calls": warm["calls"],
        "rss_baseline_mb": samples[0]["rss_mb"],
        "rss_first_mb": warm["rss_mb"],
        "rss_last_mb": last["rss_mb"],
        "rss_growth_pct": round(growth, 2),
        "rss_grows": growth >= 5.0 or (rising and growth > 1.0),
        "tasks_delta": last["asyncio_tasks"] - warm["asyncio_tasks"],
        "fds_delta": last["open_fds"] - warm["open_fds"],
        "threads_delta": last["threads"] - warm["threads"],
    }
