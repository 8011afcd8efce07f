"""``callagent escalation``: calibrate the sentiment trigger; bench trigger -> transfer request.

``escalation calibrate`` scores the labelled caller turns (frustrated vs. not, including
callers who merely describe pain) with the shipped VADER lexicon and prints the threshold
with the best recall at no false positives (the agent file's
``escalation.negative_sentiment.threshold``).

``escalation bench`` starts the real server in-process with a local stand-in for Twilio's
REST API and a screen-pop receiver, places phone calls over the Twilio Media Streams
protocol, says "let me talk to a person", and reports the server's trigger -> transfer
request time (hand-off line spoken and played, summary delivered, REST redirect accepted)
and, at the phone, the caller's end of speech -> redirect. Numbers only; it never fails
on slow ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_SERVER_TRANSFER = re.compile(
    r"call (\w+): transfer via (\w+) requested ([\d.]+) ms after the trigger"
)
_PHASES = re.compile(r"hand-off line heard (\d+) ms, request ([\d.]+) ms")
_SCREEN_POP = re.compile(r"call (\w+): screen pop delivered after \d+ attempt\(s\) in ([\d.]+) ms")


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

    from bot.settings import Settings
    from simulator.server_thread import ThreadedServer
    from simulator.voices import caller_voice

    lines: list[str] = []
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")
    with tempfile.TemporaryDirectory(prefix="callagent-esc-bench-") as tmp:
        try:
            clip = caller_voice.synthesize("Let me talk to a person, please.")
        except RuntimeError as e:
            print(e, file=sys.stderr)
            return 2
        account, token = "AC" + "b" * 32, "bench" + "0" * 27
        state: dict[str, Any] = {}

        async def make_app() -> Any:
            from bot.web.app import create_app

            stub = TwilioAndDesktopStub(account, token)
            await stub.start()
            state["stub"] = stub
            settings = Settings.load().model_copy(
                update={
                    "twilio_account_sid": account,
                    "twilio_auth_token": token,
                    "twilio_api_base_url": stub.base_url,
                    "twilio_validate_signatures": False,
                    "screen_pop_url": f"{stub.base_url}/screen-pop",
                    "screen_pop_secret": "bench-secret",
                    "data_dir": Path(tmp),
                    "crm_db": "",
                }
            )
            return create_app(settings)

        print("starting the server in-process (loading models)...", flush=True)
        server = ThreadedServer(make_app).start()
        try:
            phone = asyncio.run(
                _place_calls(server, state["stub"], clip, args.calls, token, account)
            )
        finally:
            server.stop()
    server_ms = [float(m.group(3)) for line in lines if (m := _SERVER_TRANSFER.search(line))]
    pops = [float(m.group(2)) for line in lines if (m := _SCREEN_POP.search(line))]
    phases = [m for line in lines if (m := _PHASES.search(line))]
    result = {
        "calls": args.calls,
        "server_trigger_to_request_ms": _stats(server_ms),
        "handoff_line_heard_ms": _stats([float(m.group(1)) for m in phases]),
        "screen_pop_ms": _stats(pops),
        "rest_redirect_ms": _stats([float(m.group(2)) for m in phases]),
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


async def _place_calls(
    server: Any, stub: TwilioAndDesktopStub, clip: bytes, calls: int, token: str, account: str
) -> list[float]:
    from simulator.phone import place_call

    measured: list[float] = []
    for _ in range(calls):
        call = await place_call(server.base_url, auth_token=token, account_sid=account)
        try:
            await call.wait_for_bot_speech_start(timeout=60)
            await call.wait_for_bot_silence(1.0, timeout=60)
            turn = await call.say(clip)
            redirected = await stub.wait_for_redirect(call.call_sid, timeout=60)
            stream_start = time.monotonic() - call.now()
            measured.append(round((redirected - stream_start - turn.caller_end_s) * 1000, 1))
        except (TimeoutError, RuntimeError) as e:
            print(f"  call {call.call_sid[:10]}: no redirect ({type(e).__name__})")
        finally:
            await call.hang_up()
    return measured


class TwilioAndDesktopStub:
    """The minimum of Twilio's Calls REST resource and an agent-desktop webhook, for the bench."""

    def __init__(self, account_sid: str, auth_token: str):
        """Configure the stub (credentials are not checked)."""
        self.account_sid = account_sid
        self.redirects: dict[str, float] = {}
        self._runner: Any = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        from aiohttp import web

        async def update_call(request: web.Request) -> web.Response:
            form = await request.post()
            sid = request.match_info["sid"]
            if form.get("Twiml"):
                self.redirects.setdefault(sid, time.monotonic())
            return web.json_response(
                {"sid": sid, "account_sid": self.account_sid, "status": "in-progress"}
            )

        async def screen_pop(_request: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{sid}.json", update_call)
        app.router.add_post("/screen-pop", screen_pop)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def wait_for_redirect(self, call_sid: str, timeout: float) -> float:
        """The monotonic time the call was redirected."""
        deadline = time.monotonic() + timeout
        while call_sid not in self.redirects:
            if time.monotonic() > deadline:
                raise TimeoutError
            await asyncio.sleep(0.01)
        return self.redirects[call_sid]


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "p50_ms": None, "p95_ms": None}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(p95, 1),
    }
