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
