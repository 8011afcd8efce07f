"""``callagent bench understanding``: does the agent understand callers it has never heard?

For each request of a request set (:mod:`simulator.understanding.requests`) x voice x
condition (clean, or noise at an SNR), one real call over the Twilio Media Streams
protocol (:mod:`simulator.phone`) to the agent (started here, or ``--url``): the caller
waits for the greeting to end, says the request (a request of two sentences with a
natural pause between them), then listens to the reply. A request with a context (a yes
or a no, a goodbye: see :mod:`simulator.understanding.requests`) is said after its
context line, in the same voice, once the agent has answered that line in full
(:func:`phone_script`). What the agent made of the request is read from the call's
events and record (:mod:`simulator.understanding.outcomes`), never from log text. Calls
run ``--calls-at-once`` in parallel. Figures are printed and saved (JSON, HTML); nothing
is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from simulator.bench import args as bench_args
from simulator.understanding.request_call import (
    LISTEN_S,
    REPLY_TIMEOUT_S,
    Condition,
    Job,
    phone_script,
    read_back,
    talk,
    warm_up,
)
from simulator.understanding.requests import (
    CallerRequest,
    RequestSet,
    RequestSetError,
    load_request_set,
)
from simulator.understanding.results import CLEAN, RequestCall

DEFAULT_SET = Path("scenarios/dental/requests/understanding.yaml")


def add_parser(kinds: argparse._SubParsersAction) -> None:
    """Register ``callagent bench understanding``."""
    p = kinds.add_parser(
        "understanding",
        help="unseen caller requests in many voices, clean and in noise: acted right or "
        "wrong, clarified, repaired, cut off; WER; confusion table",
    )
    p.add_argument(
        "--set",
        type=Path,
        default=DEFAULT_SET,
        help=f"the request set (default {DEFAULT_SET}); it names its agent file",
    )
    p.add_argument(
        "--voices",
        default="default",
        help="comma-separated caller voices NAME[@RATE] (flite slt/rms/awb/kal or "
        "espeak:<voice>), 'default' (slt,rms,awb,espeak:en-gb-x-rp) or 'all'",
    )
    p.add_argument(
        "--noise",
        default="none",
        help="comma-separated conditions: none (clean), white, pink, babble (default none)",
    )
    p.add_argument(
        "--snr", default="10", help="comma-separated SNRs in dB for the noisy conditions (10)"
    )
    p.add_argument("--calls-at-once", type=int, default=4, help="calls in parallel (4)")
    p.add_argument(
        "--limit", type=int, help="only this many requests (taken in turn from each intent)"
    )
    p.add_argument("--seed", type=int, default=15, help="where each call's noise starts (15)")
    p.add_argument("--html", type=Path, help="also write an HTML report here")
    bench_args.add_agent_arguments(p, operator_token_for="needed: outcomes come from events")
    bench_args.add_output_arguments(p)
    p.set_defaults(func=run_understanding)


def run_understanding(args: argparse.Namespace) -> int:
    """``callagent bench understanding``."""
    try:
        plan = plan_from_args(args)
    except (RequestSetError, ValueError) as e:
        print(e, file=sys.stderr)
        return 2
    if args.url and not args.operator_token:
        print(
            "--url needs --operator-token: outcomes are read from the call events", file=sys.stderr
        )
        return 2
    return bench_args.run(args, lambda a: _main(a, plan))


@dataclass(frozen=True)
class Plan:
    """What a run will do."""

    request_set: RequestSet
    requests: list[CallerRequest]
    voices: list[str]
    conditions: list[Condition]
    jobs: list[Job]


def plan_from_args(args: argparse.Namespace) -> Plan:
    """The request set, voices, conditions and calls of a run.

    Raises:
        RequestSetError: the request set is wrong.
        ValueError: a bad voice, noise or SNR.
    """
    from bot.agent import load_agent
    from simulator.understanding.voices import voice_list

    request_set = load_request_set(args.set)
    requests = pick_requests(request_set.requests, args.limit)
    voices = voice_list(args.voices)
    conditions = parse_conditions(args.noise, args.snr)
    hand_off = load_agent(request_set.agent_file).escalation.hand_off_intents
    jobs = plan_jobs(requests, voices, conditions, hand_off_intents=hand_off)
    return Plan(request_set, requests, voices, conditions, jobs)


def pick_requests(requests: Sequence[CallerRequest], limit: int | None) -> list[CallerRequest]:
    """All requests, or ``limit`` of them taken in turn from each intent."""
    if limit is None or limit >= len(requests):
        return list(requests)
    by_intent: dict[str, list[CallerRequest]] = {}
    for r in requests:
        by_intent.setdefault(r.intent, []).append(r)
    picked: list[CallerRequest] = []
    round_ = 0
    while len(picked) < limit:
        for group in by_intent.values():
            if round_ < len(group) and len(picked) < limit:
                picked.append(group[round_])
        round_ += 1
    return picked


def parse_conditions(noise: str, snr: str) -> list[Condition]:
    """``--noise none,babble --snr 10`` -> clean, babble at 10 dB.

    Raises:
        ValueError: an unknown noise or a bad SNR.
    """
    from simulator.voices.noise import NOISE_KINDS

    try:
        snrs = [float(s) for s in snr.split(",") if s.strip()]
    except ValueError:
        raise ValueError("--snr takes numbers (dB), comma-separated") from None
    out: list[Condition] = []
    for kind in (k.strip() for k in noise.split(",") if k.strip()):
        if kind in ("none", CLEAN):
            out.append(Condition())
        elif kind in NOISE_KINDS:
            out += [Condition(kind, s) for s in snrs]
        else:
            raise ValueError(f"unknown noise {kind!r}: use none, {', '.join(NOISE_KINDS)}")
    if not out:
        raise ValueError("--noise names no condition")
    return list(dict.fromkeys(out))


def plan_jobs(
    requests: Sequence[CallerRequest],
    voices: Sequence[str],
    conditions: Sequence[Condition],
    *,
    seed: int = 0,
    hand_off_intents: frozenset[str] = frozenset(),
) -> list[Job]:
    """Every request x voice x condition, one call each (``hand_off_intents``: see ``Job``)."""
    jobs = []
    for condition in conditions:
        for voice in voices:
            for request in requests:
                number = seed * 100_000 + len(jobs)
                jobs.append(Job(request, voice, condition, number, hand_off_intents))
    return jobs


async def _main(args: argparse.Namespace, plan: Plan) -> int:
    from simulator.bench import kit as benchkit
    from simulator.understanding import report

    started = time.monotonic()
    clips = await asyncio.to_thread(render_clips, plan.requests, plan.voices)
    agent = await benchkit.start_agent(
        args.url,
        mode=args.server,
        auth_token=args.auth_token,
        operator_token=args.operator_token,
        env={"CALLAGENT_AGENT_FILE": str(plan.request_set.agent_file)},
        verbose=args.verbose,
    )
    print(
        f"bench understanding: {len(plan.requests)} requests x {len(plan.voices)} voice(s) x "
        f"{len(plan.conditions)} condition(s) = {len(plan.jobs)} calls, "
        f"{args.calls_at_once} at once -> {agent.target.label}",
        file=sys.stderr,
        flush=True,
    )
    try:
        await warm_up(agent.target)
        rows = await run_calls(
            agent.target, plan.jobs, clips, calls_at_once=args.calls_at_once, show_progress=True
        )
    finally:
        await agent.stop()
    meta = {
        "request_set": str(plan.request_set.path),
        "agent_file": str(plan.request_set.agent_file),
        "target": agent.target.label,
        "voices": plan.voices,
        "conditions": [c.name for c in plan.conditions],
        "requests": len(plan.requests),
        "calls_at_once": args.calls_at_once,
        "wall_time_s": round(time.monotonic() - started, 1),
    }
    data = report.to_json(rows, meta)
    print()
    print("\n".join(report.console_lines(data)))
    from simulator.bench.kit import save_json

    save_json(args.json, data)
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(report.html(data), encoding="utf-8")
        print(f"saved {args.html}")
    return 0


def render_clips(
    requests: Sequence[CallerRequest], voices: Sequence[str]
) -> dict[tuple[str, str], bytes]:
    """(line, voice) -> the line as that caller says it: each request and its context line."""
    from tqdm import tqdm

    from simulator.understanding.voices import spoken

    pairs = list(
        dict.fromkeys((line, v) for v in voices for r in requests for line in phone_script(r))
    )
    out: dict[tuple[str, str], bytes] = {}
    for text, voice in tqdm(pairs, desc="caller voices", unit="clip", file=sys.stderr):
        out[(text, voice)] = spoken(text, voice)
    return out


async def run_calls(
    target: Any,
    jobs: Sequence[Job],
    clips: dict[tuple[str, str], bytes],
    *,
    calls_at_once: int = 4,
    show_progress: bool = False,
    reply_timeout_s: float = REPLY_TIMEOUT_S,
    listen_s: float = LISTEN_S,
) -> list[RequestCall]:
    """Place every job's call, ``calls_at_once`` at a time; rows in job order."""
    from tqdm import tqdm

    gate = asyncio.Semaphore(max(1, calls_at_once))
    bar = tqdm(
        total=len(jobs), desc="calls", unit="call", file=sys.stderr, disable=not show_progress
    )
    tally = {"right": 0, "wrong": 0, "cut": 0}

    async with httpx.AsyncClient() as http:

        async def one(i: int, job: Job) -> RequestCall:
            async with gate:  # only the calls themselves load the agent
                if i < calls_at_once:
                    await asyncio.sleep(i * 0.7)  # stagger the first calls' greetings
                heard = await talk(
                    target,
                    job,
                    clips,
                    http,
                    reply_timeout_s=reply_timeout_s,
                    listen_s=listen_s,
                )
            row = await read_back(target, job, heard, http)
            tally["right"] += row.outcome == "acted_right"
            tally["wrong"] += row.outcome == "acted_wrong"
            tally["cut"] += row.cut_off
            bar.set_postfix(tally, refresh=False)
            bar.update()
            return row

        try:
            return list(await asyncio.gather(*(one(i, j) for i, j in enumerate(jobs))))
        finally:
            bar.close()
