"""``callagent bench hosts``: three agent hosts behind HAProxy, one killed mid-run (run as root).

Each host is a network namespace with its own address and host name (so peers cannot
see its pids: a dead host is noticed as a real one is, by its silence), running
``callagent serve``; they share one PostgreSQL (the call records) and one Redis (the
shared state, ``CALLAGENT_SHARED_STATE_URL``) on the machine, published on the hosts'
network by HAProxy, which also balances the calls over the hosts (round-robin,
health-checked). Calls are placed through the balancer like Twilio places them (voice
webhook, then the media stream its TwiML names); ``--kill-after`` seconds into the run
one host's agent is killed with SIGKILL. Reports, per host, the calls it carried (from
the records' ``worker_id``) and how they ended: calls lost on the surviving hosts (the
target is 0), the dead host's call records closed and how soon, and whether a live
call's events are readable through every host (what a dashboard behind the balancer
needs). Prints a table and saves JSON (``--json``) and HTML (``--html``); asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shlex
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.bench import args as bench_args
from simulator.bench.hosts_lab import Lab, balancer_view, open_lab
from simulator.bench.hosts_report import print_report, save_html, summarise

ASK_FOR_A_PERSON = "Let me talk to a person, please."


def add_parser(kinds: argparse._SubParsersAction) -> None:
    """Register ``callagent bench hosts``."""
    p = kinds.add_parser(
        "hosts", help="agent hosts in network namespaces behind HAProxy, one killed (root)"
    )
    p.add_argument("--hosts", type=int, default=3, help="agent hosts (3)")
    p.add_argument("--calls", type=int, default=12, help="calls placed through the balancer")
    p.add_argument("--questions", type=int, default=6, help="questions per call (6)")
    p.add_argument("--spread", type=float, default=8.0, help="seconds over which calls start")
    p.add_argument(
        "--transfers", type=int, default=3, help="calls that ask for a person (transfer, 3)"
    )
    p.add_argument("--kill", default="h2", help="the host whose agent is killed (h2; none)")
    p.add_argument(
        "--kill-after", type=float, default=25.0, help="seconds into the run of the kill (25)"
    )
    p.add_argument(
        "--close-wait",
        type=float,
        default=120.0,
        help="longest wait for the dead host's call records to be closed (120 s)",
    )
    p.add_argument(
        "--health-path", default="/healthz", help="what HAProxy polls (a readiness endpoint)"
    )
    p.add_argument("--speech", choices=["embedded", "cloud"], default="embedded")
    p.add_argument(
        "--database-url", default="", help="the shared PostgreSQL (default: start one here)"
    )
    p.add_argument(
        "--serve-args", default="", help='more arguments for callagent serve (e.g. "--workers 2")'
    )
    p.add_argument(
        "--agent-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for every agent (repeatable)",
    )
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--html", type=Path, help="also save the report as HTML here")
    bench_args.add_output_arguments(p)
    p.set_defaults(func=run_hosts)


def run_hosts(args: argparse.Namespace) -> int:
    """``callagent bench hosts``."""
    bench_args.quiet_logs(args.verbose)
    if os.geteuid() != 0:
        print("bench hosts makes network namespaces: run it as root", file=sys.stderr)
        return 2
    if args.hosts < 2 or args.calls < 1 or args.questions < 1:
        print("--hosts takes 2 or more, --calls and --questions 1 or more", file=sys.stderr)
        return 2
    try:
        extra = dict(item.split("=", 1) for item in args.agent_env)
    except ValueError:
        print("--agent-env takes NAME=VALUE", file=sys.stderr)
        return 2
    args.agent_settings = extra
    args.serve_argv = shlex.split(args.serve_args)
    return asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> int:
    from simulator.bench import kit as benchkit
    from simulator.bench.netns import LabUnavailable

    clips = await asyncio.to_thread(benchkit.clips, benchkit.QUESTIONS)
    args.person = (await asyncio.to_thread(benchkit.clips, [ASK_FOR_A_PERSON]))[ASK_FOR_A_PERSON]
    with ExitStack() as stack:
        try:
            lab = await open_lab(stack, args, {**clips, ASK_FOR_A_PERSON: args.person})
        except LabUnavailable as e:
            print(f"cannot build the hosts: {e}", file=sys.stderr)
            return 2
        try:
            run = await _run(lab, clips, args)
        finally:
            await lab.aclose()
    summary = summarise(run, args)
    print_report(summary)
    benchkit.save_json(args.json, summary)
    if args.html:
        save_html(args.html, summary)
    return 0


async def _run(lab: Lab, clips: dict[str, bytes], args: argparse.Namespace) -> dict[str, Any]:
    """Place the calls, kill one host on time, then wait for its records to be closed."""
    from simulator.phone import new_sid

    rng = random.Random(args.seed)
    sids = [new_sid("CA") for _ in range(args.calls)]
    live: set[str] = set()
    delays = sorted(rng.uniform(0, args.spread) for _ in sids)
    offsets = [rng.randrange(len(clips)) for _ in sids]
    every = max(1, args.calls // max(1, args.transfers))
    transfers = set(range(every - 1, args.calls, every)[: args.transfers])
    t0 = time.monotonic()
    kill = asyncio.create_task(_kill_on_time(lab, args, live, t0))
    results = await asyncio.gather(
        *(
            _one_call(lab, clips, Plan(sid, delay, offset, i in transfers), args, live, t0)
            for i, (sid, delay, offset) in enumerate(zip(sids, delays, offsets, strict=True))
        )
    )
    killed = await kill
    closed_within = None
    if killed.get("host"):
        closed_within = await _wait_for_closed(lab, sids, killed, args.close_wait)
    records = await lab.records(sids)
    return {
        "calls": results,
        "records": records,
        "killed": killed,
        "closed_within_s": closed_within,
        "hosts": {h.name: lab.pids.get(h.name) for h in lab.hosts},
        "speech": lab.speech_summary(),
        "balancer": lab.balancer_url,
    }


async def _kill_on_time(
    lab: Lab, args: argparse.Namespace, live: set[str], t0: float
) -> dict[str, Any]:
    if args.kill == "none":
        return {}
    await asyncio.sleep(max(0.0, args.kill_after - 3 - (time.monotonic() - t0)))
    events = await lab.events_everywhere(sorted(live))  # a dashboard asking any host
    await asyncio.sleep(max(0.0, args.kill_after - (time.monotonic() - t0)))
    balancer = await balancer_view()
    pid = lab.pids.get(args.kill)
    at = time.time()
    await lab.kill(args.kill)
    print(f"killed {args.kill} (pid {pid}) {args.kill_after:g} s into the run", flush=True)
    after = await _after_kill(args.kill)
    return {
        "host": args.kill,
        "pid": pid,
        "at": at,
        "t_s": args.kill_after,
        "events": events,
        "balancer_before": balancer,
        "balancer_marked_down_s": after,
    }


async def _after_kill(name: str, wait_s: float = 15.0) -> float | None:
    """Seconds until the balancer took the dead host out (None: not within ``wait_s``)."""
    start = time.monotonic()
    while time.monotonic() - start < wait_s:
        if (await balancer_view()).get(name, "DOWN").startswith("DOWN"):
            return round(time.monotonic() - start, 1)
        await asyncio.sleep(0.2)
    return None


async def _wait_for_closed(
    lab: Lab, sids: list[str], killed: dict[str, Any], wait_s: float
) -> float | None:
    """Seconds from the kill until every call record of the dead host had ended (None: not)."""
    deadline = time.time() + wait_s
    while True:
        records = await lab.records(sids)
        theirs = [r for r in records.values() if r.get("host") == killed["host"]]
        if theirs and all(r.get("ended_at") for r in theirs):
            return round(time.time() - killed["at"], 1)
        if time.time() > deadline:
            return None
        await asyncio.sleep(2)


@dataclass(frozen=True)
class Plan:
    """What one call does: when it starts, its first question, whether it asks for a person."""

    sid: str
    delay_s: float
    offset: int
    transfer: bool


async def _one_call(
    lab: Lab,
    clips: dict[str, bytes],
    plan: Plan,
    args: argparse.Namespace,
    live: set[str],
    t0: float,
) -> dict[str, Any]:
    """One call through the balancer asking FAQ questions (and then for a person)."""
    from simulator.phone import CallEndedError, place_call
    from simulator.target import SIM_ACCOUNT_SID

    sid, offset = plan.sid, plan.offset
    questions = max(1, args.questions - 1) if plan.transfer else args.questions
    await asyncio.sleep(plan.delay_s)
    out: dict[str, Any] = {"sid": sid, "latencies": [], "unanswered": 0, "error": None}
    out["transfer"] = plan.transfer
    out["started_s"] = round(time.monotonic() - t0, 1)
    texts = list(clips)
    call = None
    try:
        call = await place_call(
            lab.balancer_url,
            auth_token=lab.auth_token,
            account_sid=SIM_ACCOUNT_SID,
            call_sid=sid,
            timeout_s=30,
        )
        live.add(sid)
        await call.wait_for_bot_speech_start(timeout=60)
        await call.wait_for_bot_silence(1.0, timeout=60)
        for i in range(questions):
            turn = await call.say(clips[texts[(offset + i) % len(texts)]])
            try:
                await call.wait_for_bot_speech_start(timeout=30, after=turn.caller_end_s)
                if turn.latency_s is not None:
                    out["latencies"].append(round(turn.latency_s * 1000, 1))
            except TimeoutError:
                out["unanswered"] += 1
            await call.wait_for_bot_silence(1.0, timeout=60)
        if plan.transfer and lab.rest is not None:
            await call.say(args.person)
            update = await lab.rest.wait_for_redirect(sid, timeout=60)
            await call.hang_up()  # Twilio ends the stream when it follows the redirect
            out["callback"] = await lab.transfer_callback(update)
    except (CallEndedError, TimeoutError, OSError) as e:
        out["error"] = type(e).__name__
    except Exception as e:  # noqa: BLE001 - a bench reports every failure, never stops on one
        out["error"] = type(e).__name__
    finally:
        live.discard(sid)
        out["ended_s"] = round(time.monotonic() - t0, 1)
        if call is not None:
            await call.hang_up()
    return out
