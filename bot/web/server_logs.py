"""The server's own log lines (uvicorn's start-up, errors and access log) in the app's log.

uvicorn logs through the standard library; :func:`route_server_logs` sends its loggers to
loguru (so ``CALLAGENT_LOG_FORMAT=json`` covers them too) and strips query strings from
the request paths they print: a query may carry caller data (``/?caller=+1555...``) or a
one-time token (``/twilio/whisper?h=...``), and logs carry ids, never caller data.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from loguru import logger

SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
QUERY_REMOVED = "?…"
"""What a request path's query string is replaced with in log lines."""


class DropQueryStrings(logging.Filter):
    """Cuts the query string off every request path a uvicorn log line carries.

    uvicorn passes the path (with its query) as an argument of the access line
    (``'%s - "%s %s HTTP/%s" %d'``) and of the WebSocket lines, so the arguments are
    rewritten before the line is formatted.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's path arguments; never drops the line."""
        if isinstance(record.args, tuple):
            record.args = tuple(_without_query(a) for a in record.args)
        elif isinstance(record.msg, str) and record.msg.startswith("/"):
            record.msg = _without_query(record.msg)
        return True


class InterceptHandler(logging.Handler):
    """Hands standard-library log records to loguru (loguru's documented recipe)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Log ``record`` through loguru at its level."""
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = inspect.currentframe(), 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def route_server_logs() -> None:
    """Send uvicorn's loggers to loguru, query strings removed (idempotent)."""
    handler = InterceptHandler()
    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers = [handler]
        server_logger.propagate = False
        if not any(isinstance(f, DropQueryStrings) for f in server_logger.filters):
            server_logger.addFilter(DropQueryStrings())


def _without_query(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("/") and "?" in value:
        return value.split("?", 1)[0] + QUERY_REMOVED
    return value
