"""``callagent call``: place one outbound call through the running server.

``callagent call +15555550123 --agent appointment_reminders --var first_name=Maria
--var appointment="Friday 10 am" [--channel twilio|sip|browser] [--server URL] [--wait]``
posts to the server's
``POST /api/calls/outbound`` with the operator token from the settings and prints the
attempt id (for ``--channel browser``, the page link that rings; ``--channel sip`` sends an
INVITE through the server's SIP trunk, ``CALLAGENT_SIP_OUTBOUND_PROXY``); ``--wait`` polls
``GET /api/calls/outbound/{id}`` until the attempt ends and prints its disposition.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

from bot.settings import Settings

POLL_S = 1.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``call``."""
    call = subparsers.add_parser("call", help="place one outbound call through the server")
    call.add_argument("to", help="the number to call (E.164); any id with --browser")
    call.add_argument(
        "--agent", default="", help="the agent's key or file (default: the server's default)"
    )
    call.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", help="a script variable"
    )
    call.add_argument(
        "--channel",
        choices=("twilio", "sip", "browser"),
        default="twilio",
        help="how the call is placed: Twilio, an INVITE through the SIP trunk, the browser page",
    )
    call.add_argument(
        "--browser", action="store_true", help="ring the browser page (--channel browser)"
    )
    call.add_argument("--server", help="the server (default CALLAGENT_PUBLIC_URL or :7860)")
    call.add_argument("--wait", action="store_true", help="wait for the result")
    call.add_argument("--timeout", type=float, default=600.0, help="longest wait (600 s)")
    call.set_defaults(func=run_call)


def parse_vars(pairs: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` pairs as a dict (raises ``ValueError`` naming a bad one)."""
    variables: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--var {pair!r}: write NAME=VALUE")
        variables[name.strip()] = value
    return variables


def run_call(args: argparse.Namespace) -> int:
    """Place the call; print the attempt (and, with ``--wait``, how it ended)."""
    settings = Settings.load()
    server = (args.server or settings.public_url or f"http://127.0.0.1:{settings.port}").rstrip("/")
    try:
        return _place(args, settings, server)
    except httpx.HTTPError as e:
        print(
            f"cannot reach the server at {server} ({type(e).__name__}): is it running? "
            "Set --server or CALLAGENT_PUBLIC_URL",
            file=sys.stderr,
        )
        return 1


def _place(args: argparse.Namespace, settings: Settings, server: str) -> int:
    try:
        variables = parse_vars(args.var)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    headers = {"Authorization": f"Bearer {settings.operator_token}"}
    body = {
        "to": args.to,
        "agent": Path(args.agent).stem if args.agent else "",
        "variables": variables,
        "channel": "browser" if args.browser else args.channel,
    }
    with httpx.Client(base_url=server, headers=headers, timeout=30) as client:
        response = client.post("/api/calls/outbound", json=body)
        placed = response.json() if response.content else {}
        if response.status_code != 201:
            print(
                f"not placed (HTTP {response.status_code}): {placed.get('detail')}", file=sys.stderr
            )
            return 1
        print(f"attempt {placed['attempt_id']} ({placed['status']})")
        if placed.get("ring_url"):
            print(f"answer it at {server}{placed['ring_url']}")
        if not args.wait:
            return 0
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            attempt = client.get(f"/api/calls/outbound/{placed['attempt_id']}").json()
            if attempt.get("state") == "ended":
                code = f" (error {attempt['error_code']})" if attempt.get("error_code") else ""
                who = attempt.get("answered_by")
                answered = f", answered by {who}" if who else ""
                print(f"ended: {attempt.get('disposition')}{code}{answered}")
                return 0
            time.sleep(POLL_S)
    print("still not ended: see GET /api/calls/outbound/<id>", file=sys.stderr)
    return 1
