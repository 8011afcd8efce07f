"""``callagent simulate``: scripted callers test an agent over the real phone protocol.

Each scenario file is one call (see :mod:`simulator.scenarios.scenario_file`): a caller voice,
optional background noise and line impairments, and steps with expectations. The calls
go to a running agent (``--url``) or to one started here on loopback, in real time over
Twilio Media Streams, or over SIP with ``--sip sip:agent@HOST:PORT`` (an INVITE, G.711
RTP both ways, RFC 4733 keys, BYE; without ``--url`` the agent started here listens for
SIP on that port). A file saying ``direction: outbound`` is the other way round (see
:mod:`simulator.scenarios.outbound`): the agent started here is asked to call a simulated
callee, and dials it through the simulator's fake Twilio REST API. The command prints a
pass/fail line per expectation and per-turn figures, writes ``report.json``,
``report.html`` and a stereo recording per call, and exits non-zero when an expectation
fails (so it can gate a deploy).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``callagent simulate``."""
    p = subparsers.add_parser(
        "simulate",
        help="place scripted calls (scenario YAML files) and check the agent's behaviour",
        description=(__doc__ or "").partition("\n")[0],
    )
    p.add_argument("scenarios", nargs="+", type=Path, help="scenario files or folders of them")
    p.add_argument(
        "--url",
        help="a running agent: ws(s)://HOST/twilio/stream, or http(s)://HOST to place calls "
        "through its voice webhook; default: start the agent here on loopback",
    )
    p.add_argument(
        "--sip",
        metavar="URI",
        help="place the calls over SIP to this URI (sip:agent@127.0.0.1:5060) instead of "
        "Twilio Media Streams; with --url that agent's events are read, without it the agent "
        "started here listens for SIP on the URI's port",
    )
    p.add_argument("--auth-token", help="Twilio auth token to sign requests with (--url)")
    p.add_argument(
        "--operator-token",
        help="the agent's CALLAGENT_OPERATOR_TOKEN (--url): lets intents and escalations be "
        "checked on its per-call events; without it they are reported unverified",
    )
    p.add_argument(
        "--agent",
        type=Path,
        help="agent file to check expected intent names against (default: the configured one)",
    )
    p.add_argument("--out", type=Path, default=Path("simulation-report"), help="output folder")
    p.add_argument("--concurrency", type=int, default=1, help="calls in flight at once (1)")
    p.add_argument("--repeat", type=int, default=1, help="times each scenario is called (1)")
    p.add_argument(
        "--server",
        choices=["thread", "process"],
        default="thread",
        help="without --url: run the agent in this process (thread) or a child process",
    )
    p.add_argument("--strict", action="store_true", help="unverified checks fail too")
    p.add_argument("--no-recordings", action="store_true", help="do not save call recordings")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--check", action="store_true", help="only validate the scenario files")
    p.add_argument("--verbose", action="store_true", help="show the agent's log")
    p.set_defaults(func=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    """``callagent simulate``."""
    from simulator.scenarios.outbound_suite import NEEDS_LOCAL_AGENT, load_all
    from simulator.scenarios.scenario import check_against_agent

    scenarios, outbound, errors = load_all(args.scenarios)
    if not scenarios and not outbound and not errors:
        print("no scenario files found", file=sys.stderr)
        return EXIT_USAGE
    intents = _agent_intents(args) if scenarios else None
    if intents is not None:
        for scenario in scenarios:
            errors += check_against_agent(scenario, intents)
    if outbound and args.url:
        print(f"error: {NEEDS_LOCAL_AGENT}", file=sys.stderr)
        return EXIT_USAGE
    if args.sip:
        errors += _sip_problems(args.sip, local=not args.url)
    if errors:
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.check:
        print(f"{len(scenarios) + len(outbound)} scenario file(s) OK")
        return EXIT_OK
    if args.concurrency < 1 or args.repeat < 1:
        print("--concurrency and --repeat must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_simulate(args, scenarios, outbound))
    except KeyboardInterrupt:
        return EXIT_FAILED


def _sip_problems(uri: str, *, local: bool) -> list[str]:
    """What is wrong with ``--sip`` (empty when it is usable)."""
    from simulator.phone import SipTarget

    try:
        target = SipTarget.parse(uri)
    except ValueError as e:
        return [f"--sip {uri}: {e}"]
    if local and target.host not in ("127.0.0.1", "localhost"):
        return [
            f"--sip {uri}: the agent started here listens on 127.0.0.1; to call an agent "
            "elsewhere, give its web address too (--url http://HOST:PORT)"
        ]
    return []


def _agent_intents(args: argparse.Namespace) -> list[str] | None:
    """Intent names of the agent under test, when known (to catch typos in expectations)."""
    from bot.agent import load_agent

    path = args.agent
    if path is None and args.url is None:
        from bot.settings import Settings

        path = Settings.load().agent_file
    if path is None:
        return None
    agent = load_agent(path)
    return [i.name for i in agent.intents]


async def _simulate(
    args: argparse.Namespace, scenarios: list[Any], outbound: list[Any] | None = None
) -> int:
    from loguru import logger
    from tqdm import tqdm

    from simulator.local_agent import LocalAgent
    from simulator.phone import SipTarget
    from simulator.scenarios import report
    from simulator.scenarios.outbound_suite import (
        outbound_lines,
        outbound_summary,
        run_outbound_suite,
    )
    from simulator.scenarios.results import summarize
    from simulator.scenarios.suite import SuiteOptions, run_suite, total_steps
    from simulator.target import Target

    logger.remove()
    logger.add(sys.stderr, level="INFO" if args.verbose else "WARNING")
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    local: LocalAgent | None = None
    if args.url:
        try:
            target = Target.from_url(
                args.url, auth_token=args.auth_token, operator_token=args.operator_token
            )
            if args.sip:
                target = target.over_sip(args.sip)
        except ValueError as e:
            print(e, file=sys.stderr)
            return EXIT_USAGE
        target.transcriber = _load_transcriber()
    else:
        print("starting the agent on loopback (loading models)...", file=sys.stderr, flush=True)
        sip_port = SipTarget.parse(args.sip).port if args.sip else 0
        local = LocalAgent(mode=args.server, verbose=args.verbose, sip_port=sip_port)
        target = await local.start()
        if target.transcriber is None:
            target.transcriber = _load_transcriber()
    out: Path = args.out
    bar = tqdm(
        total=total_steps(scenarios, args.repeat) + len(outbound or []) * args.repeat,
        unit="step",
        desc="simulating",
        file=sys.stderr,
        disable=args.no_progress,
        dynamic_ncols=True,
    )

    def on_call(result: Any) -> None:
        for line in report.call_lines(result):
            bar.write(line)

    def on_step(_step: Any) -> None:
        bar.update(1)

    def on_outbound(result: Any) -> None:
        bar.update(1)
        for line in outbound_lines(result):
            bar.write(line)

    try:
        results = await run_suite(
            scenarios,
            target,
            SuiteOptions(
                concurrency=args.concurrency,
                repeat=args.repeat,
                recordings_dir=None if args.no_recordings else out / "recordings",
            ),
            on_step=on_step,
            on_call=on_call,
        )
        outbound_results = (
            await run_outbound_suite(outbound, target, repeat=args.repeat, on_result=on_outbound)
            if outbound
            else []
        )
    finally:
        bar.close()
        if local is not None:
            await local.stop()
    meta = {
        "target": target.label,
        "started_at": started_at,
        "scenarios": [s.path for s in scenarios] + [s.path for s in outbound or []],
        "concurrency": args.concurrency,
        "repeat": args.repeat,
        "events": any(r.events_available for r in results),
    }
    data = report.report_data(results, meta)
    data["outbound"] = [r.as_dict() for r in outbound_results]
    report.write_json(out / "report.json", data)
    report.write_html(out / "report.html", data, results)
    print()
    if results:
        for line in report.summary_lines(summarize(results)):
            print(line)
    for line in outbound_summary(outbound_results):
        print(line)
    print(f"report: {out / 'report.html'} and {out / 'report.json'}")
    failed = any(not r.passed for r in results) or any(not r.passed for r in outbound_results)
    unverified = any(c.status == "unverified" for r in results for c in r.checks) or any(
        c.ok is None for r in outbound_results for c in r.checks
    )
    return EXIT_FAILED if failed or (args.strict and unverified) else EXIT_OK


def _load_transcriber() -> Any:
    """The embedded ASR, to transcribe what the caller heard (None if it cannot load)."""
    try:
        from bot.settings import Settings
        from integrations.speech.moonshine import MoonshineRecognizer

        settings = Settings.load()
        return MoonshineRecognizer.shared(cache_dir=settings.cache_dir / "moonshine")
    except Exception as e:  # noqa: BLE001
        print(
            f"warning: no speech recogniser ({type(e).__name__}); reply wording is unverified",
            file=sys.stderr,
        )
        return None
