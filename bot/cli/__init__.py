"""The ``callagent`` command: serve the agent, plus operator and simulator tools.

Each shipped command group lives in ``bot/cli/<group>.py`` and registers itself
with ``add_parser(subparsers)``; its handlers take the parsed arguments and
return an exit code. Groups from optional extras (the simulator's ``simulate``,
``bench``, ``nlu`` and ``escalation``) register through the ``callagent.commands``
entry-point group, so nothing shipped imports them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from loguru import logger

from bot.settings import Settings, SettingsError

if TYPE_CHECKING:
    import uvicorn
    from loguru import Record

COMMAND_GROUPS = ("calls", "db", "crm", "agent", "campaign", "dnc", "worker", "call")
PLUGIN_GROUP = "callagent.commands"
SIM_EXTRA_HINT = "install the simulator extra: pip install 'callagent[sim]'"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``callagent`` console script."""
    parser = argparse.ArgumentParser(
        prog="callagent", description=(__doc__ or "").partition("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="start the agent server (browser page, Twilio, rooms)")
    serve.add_argument("--host", help="listen address (default CALLAGENT_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default PORT or 7860)")
    serve.add_argument(
        "--workers",
        type=int,
        help="server processes on the port, one per core (default CALLAGENT_WORKERS or 1)",
    )
    # a worker under the supervisor: the inherited listening socket and status pipe
    serve.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--status-fd", type=int, help=argparse.SUPPRESS)
    serve.set_defaults(func=_serve)

    config = sub.add_parser("config", help="show or check the settings")
    config.add_argument(
        "action", choices=["example", "check"], help="print .env.example, or validate"
    )
    config.set_defaults(func=_config)

    for group in COMMAND_GROUPS:
        module = importlib.import_module(f"bot.cli.{group}")
        module.add_parser(sub)
    _add_plugin_commands(sub)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SettingsError as e:
        print(e, file=sys.stderr)
        return 2


def _add_plugin_commands(sub: argparse._SubParsersAction) -> None:
    """Register the command groups that optional extras declare as entry points.

    A group whose extra is not installed (its module fails to import) still appears,
    and says how to install it instead of failing with a traceback.
    """
    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            add_parser = entry.load()
        except ImportError as e:
            missing = sub.add_parser(entry.name, help=f"(not installed: {SIM_EXTRA_HINT})")
            missing.set_defaults(func=_missing_extra(entry.name, e))
            continue
        add_parser(sub)


def _missing_extra(name: str, error: ImportError):
    def run(_args: argparse.Namespace) -> int:
        print(f"callagent {name}: {error}; {SIM_EXTRA_HINT}", file=sys.stderr)
        return 2

    return run


TEXT_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "<cyan>{name}</cyan>:<cyan>{function}</cyan>:<cyan>{line}</cyan> - "
)
"""loguru's default line up to the message; the call id (when bound) goes before the message."""


def _text_format(record: Record) -> str:
    call = "call {extra[call_id]} | " if "call_id" in record["extra"] else ""
    return TEXT_FORMAT + call + "<level>{message}</level>\n{exception}"


def configure_logging(level: str, fmt: str = "text") -> None:
    """Log to stderr at ``level``, as text or JSON (message bodies never carry caller data).

    The server's own lines (uvicorn's start-up, errors, access log) go the same way, with
    query strings cut off the request paths (:mod:`bot.web.server_logs`).

    Lines logged inside a call (``logger.contextualize(call_id=...)``) carry its id: text
    lines show ``call <id> |`` before the message; JSON lines (loguru's ``serialize``, one
    object a line) have it in ``record.extra.call_id``.

    Args:
        level: ``TRACE``, ``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR`` (any case).
        fmt: ``text`` or ``json``.
    """
    from bot.web.server_logs import route_server_logs

    logger.remove()
    # diagnose=False: loguru would print every frame's variables (a caller's number, a
    # transcript) under the traceback of each logger.exception
    if fmt == "json":
        logger.add(
            sys.stderr, level=level.upper(), format="{message}", serialize=True, diagnose=False
        )
    else:
        logger.add(sys.stderr, level=level.upper(), format=_text_format, diagnose=False)
    route_server_logs()


def server_config(
    app: Any, settings: Settings, *, host: str | None = None, port: int | None = None
) -> uvicorn.Config:
    """How ``callagent serve`` runs uvicorn: its logs stay on :func:`configure_logging`'s."""
    import uvicorn

    from bot.web.app import WEBSOCKET_OPTIONS

    return uvicorn.Config(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's own handlers would print query strings
        # the client address behind a proxy is CALLAGENT_TRUSTED_PROXIES' to decide
        # (bot/web/admission.py), not uvicorn's default trust of 127.0.0.1
        proxy_headers=False,
        **WEBSOCKET_OPTIONS,
    )


def _serve(args: argparse.Namespace) -> int:
    from bot.serving.serve import serve

    settings = Settings.load()
    listen = {"host": args.host or settings.host, "port": args.port or settings.port}
    if args.workers is not None:
        listen["workers"] = args.workers
    settings = settings.model_copy(update=listen)  # the app decides by where it listens
    configure_logging(settings.log_level, settings.log_format)
    return serve(settings, server_config, listen_fd=args.listen_fd, status_fd=args.status_fd)


def _config(args: argparse.Namespace) -> int:
    if args.action == "example":
        sys.stdout.write(Settings.example_env())
        return 0
    settings = Settings.load()
    print(
        f"settings OK: transport={settings.transport} stt={settings.stt} "
        f"tts={settings.tts} llm={settings.llm}"
    )
    return 0
