"""``callagent escalation``: calibrate the sentiment trigger; bench trigger -> transfer request.

``escalation calibrate`` scores the labelled caller turns (frustrated vs. not, including
callers who merely describe pain) with the shipped VADER lexicon and prints the threshold
with the best recall at no false positives (the agent file's
``escalation.negative_sentiment.threshold``).

``escalation bench`` starts the real agent in-process (:class:`simulator.local_agent.LocalAgent`,
with its fake of Twilio's REST API) and a screen-pop receiver, places phone calls over the
Twilio Media Streams protocol, says "let me talk to a person", and reports the server's
trigger -> transfer request time (hand-off line spoken and played, summary delivered, REST
redirect accepted), read from each call's ``transfer`` event, and, at the phone, the
caller's end of speech -> redirect (when the fake REST API received it). Numbers only; it
never fails on slow ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from integrations.percentile import latency_summary
from simulator.events_client import EventsClient
from simulator.local_agent import LocalAgent

SCREEN_POP_SECRET = "bench-secret"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``callagent escalation <action>``."""
    group = subparsers.add_parser("escalation", help="calibrate and bench the hand-off to a person")
    actions = group.add_subparsers(dest="escalation_action", required=True)
    calibrate = actions.add_parser("calibrate", help="calibrate the negative-sentiment threshold")
    calibrate.add_argument(
        "--max-false-positive-rate", type=float, default=0.0, help="allowed FPR (0)"
    )
    calibrate.set_defaults(func=run_calibrate)
    bench = actions.add_parser(
        "bench", help="trigger -> transfer request over Twilio Media Streams, in-process"
    )
    bench.add_argument("--calls", type=int, default=5, help="calls to place (5)")
    bench.add_argument("--json", type=Path, help="also save the results as JSON here")
    bench.set_defaults(func=run_bench)


def run_calibrate(args: argparse.Namespace) -> int:
    """``callagent escalation calibrate``."""
    from integrations.sentiment import CALIBRATION_SET, VaderSentiment, calibrate_threshold

    analyzer = VaderSentiment()
    result = calibrate_threshold(
        analyzer, CALIBRATION_SET, max_false_positive_rate=args.max_false_positive_rate
    )
    positives = sum(1 for _, label in CALIBRATION_SET if label)
    print(
        f"{len(CALIBRATION_SET)} labelled caller turns ({positives} frustrated): "
        f"threshold {result.threshold:+.3f}  precision {result.precision:.2f}  "
        f"recall {result.recall:.2f}  false-positive rate {result.false_positive_rate:.2f}"
    )
    print("set it as escalation.negative_sentiment.threshold in the agent file")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    """``callagent escalation bench``."""
    from loguru import logger

    from simulator.voices import caller_voice

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    try:
        clip = caller_voice.synthesize("Let me talk to a person, please.")
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 2
    print("starting the server in-process (loading models)...", flush=True)
    transfers, phone = asyncio.run(_bench(clip, args.calls))
    requested = [t for t in transfers if t.get("ok")]
    result = {
        "calls": args.calls,
        "server_trigger_to_request_ms": _stats(
            [float(t["trigger_to_request_ms"]) for t in requested]
        ),
        "handoff_line_heard_ms": _stats(_present(transfers, "line_heard_ms")),
        "screen_pop_ms": _stats(_present(transfers, "screen_pop_ms")),
        "rest_redirect_ms": _stats(_present(transfers, "request_ms")),
        "phone_caller_end_to_redirect_ms": _stats(phone),
    }
    print(f"escalation bench: {args.calls} calls, 'let me talk to a person' over Twilio")
    for name, label in (
        ("server_trigger_to_request_ms", "trigger -> transfer request (server)"),
        ("handoff_line_heard_ms", "  of which: hand-off line played at the phone"),
        ("screen_pop_ms", "  screen pop delivered (during the line)"),
        ("rest_redirect_ms", "  REST redirect request"),
        ("phone_caller_end_to_redirect_ms", "caller end of speech -> redirect (phone)"),
    ):
        s = result[name]
        print(f"  {label:44s} p50 {s['p50_ms']} ms  p95 {s['p95_ms']} ms  (n={s['n']})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def _present(events: list[dict[str, Any]], key: str) -> list[float]:
    return [float(e[key]) for e in events if e.get(key) is not None]


async def _desk(stack: AsyncExitStack) -> dict[str, str]:
    """An agent-desktop webhook that takes every screen pop (started beside the agent)."""
    desk = await stack.enter_async_context(DeskWebhook())
    return {
        "CALLAGENT_SCREEN_POP_URL": desk.url,
        "CALLAGENT_SCREEN_POP_SECRET": SCREEN_POP_SECRET,
    }


async def _bench(clip: bytes, calls: int) -> tuple[list[dict[str, Any]], list[float]]:
    """Each call's first ``transfer`` event, and the phone's caller end -> redirect times."""
    local = LocalAgent(mode="thread", env={"TWILIO_VALIDATE_SIGNATURES": "false"}, companions=_desk)
    target = await local.start()
    try:
        return await _place_calls(local, target, clip, calls)
    finally:
        await local.stop()


async def _place_calls(
    local: LocalAgent, target: Any, clip: bytes, calls: int
) -> tuple[list[dict[str, Any]], list[float]]:
    import httpx

    from simulator.phone import place_call

    transfers: list[dict[str, Any]] = []
    measured: list[float] = []
    async with httpx.AsyncClient() as http:
        for _ in range(calls):
            call = await place_call(
                local.base_url, auth_token=local.auth_token, account_sid=local.account_sid
            )
            events = EventsClient(target, call.call_sid, http)
            try:
                await call.wait_for_bot_speech_start(timeout=60)
                await call.wait_for_bot_silence(1.0, timeout=60)
                turn = await call.say(clip)
                redirect = await local.rest.wait_for_redirect(call.call_sid, timeout=60)
                stream_start = time.monotonic() - call.now()
                measured.append(round((redirect.at - stream_start - turn.caller_end_s) * 1000, 1))
            except (TimeoutError, RuntimeError) as e:
                print(f"  call {call.call_sid[:10]}: no redirect ({type(e).__name__})")
            finally:
                await call.hang_up()
            transfer = await _first_transfer(events)
            if transfer is not None:
                transfers.append(transfer)
    return transfers, measured


async def _first_transfer(events: EventsClient, timeout_s: float = 10.0) -> dict[str, Any] | None:
    """The call's first ``transfer`` event (its result is also sent upstream: one per call)."""
    for event in await events.drain(timeout_s):
        if event.get("type") == "transfer":
            return event
    return None


class DeskWebhook:
    """An agent-desktop webhook for the bench: ``POST /screen-pop`` answers 200."""

    def __init__(self) -> None:
        """Configure (listens on :meth:`start`)."""
        self._runner: Any = None
        self.port = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/screen-pop``."""
        return f"http://127.0.0.1:{self.port}/screen-pop"

    async def __aenter__(self) -> DeskWebhook:
        """Listen on a free loopback port."""
        from aiohttp import web

        async def screen_pop(_request: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_post("/screen-pop", screen_pop)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *_exc: object) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _stats(values: list[float]) -> dict[str, Any]:
    summary = latency_summary(values)
    return {k: summary[k] for k in ("n", "p50_ms", "p95_ms")}
