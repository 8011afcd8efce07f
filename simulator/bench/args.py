"""Arguments and start-up shared by the benches that place calls on an agent."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any


def add_agent_arguments(p: argparse.ArgumentParser, *, operator_token_for: str = "") -> None:
    """``--url``/``--auth-token`` (and ``--operator-token``) of the agent, plus ``--server``."""
    p.add_argument("--url", help="a running agent (http(s)://HOST); default: start one here")
    p.add_argument("--auth-token", help="Twilio auth token of the --url agent")
    if operator_token_for:
        p.add_argument(
            "--operator-token", help=f"its CALLAGENT_OPERATOR_TOKEN ({operator_token_for})"
        )
    p.add_argument("--server", choices=["thread", "process"], default="process")


def add_sip_argument(p: argparse.ArgumentParser, *, what: str) -> None:
    """``--sip URI``: the agent's SIP address (an agent started here listens there)."""
    p.add_argument(
        "--sip",
        metavar="URI",
        help=f"the agent's SIP URI (sip:agent@127.0.0.1:5060): {what}; without --url the "
        "agent started here listens for SIP on its port",
    )


def sip_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with ``--sip`` (None when absent or usable)."""
    if not getattr(args, "sip", None):
        return None
    from simulator.phone import SipTarget

    try:
        target = SipTarget.parse(args.sip)
    except ValueError as e:
        return f"--sip {args.sip}: {e}"
    if not args.url and target.host not in ("127.0.0.1", "localhost"):
        return "--sip: the agent started here listens on 127.0.0.1 (or give --url)"
    return None


async def dial(target: Any, *, sip: bool = False, **kwargs: Any) -> Any:
    """Place one call on ``target``: over SIP (``sip``, to ``target.sip_uri``) or Twilio."""
    from dataclasses import replace

    if not sip:
        target = replace(target, sip_uri=None)
    elif not target.sip_uri:
        raise ValueError("this target has no SIP URI (--sip)")
    return await target.dial(**kwargs)


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    """``--json`` and ``--verbose``."""
    p.add_argument("--json", type=Path, help="also save the results as JSON here")
    p.add_argument("--verbose", action="store_true")


def quiet_logs(verbose: bool) -> None:
    """Only warnings from the agent on stderr, unless ``--verbose``."""
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="INFO" if verbose else "WARNING")


def run(
    args: argparse.Namespace, main: Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
) -> int:
    """Run a bench's ``main(args)`` with the agent's logs quietened."""
    quiet_logs(args.verbose)
    return asyncio.run(main(args))
