"""Opens the shared state a URL names: in-process, Redis or PostgreSQL."""

from __future__ import annotations

from urllib.parse import urlsplit

from integrations.shared_state.base import SharedState, SharedStateError
from integrations.shared_state.memory import MemorySharedState

SETTING = "CALLAGENT_SHARED_STATE_URL"
ACCEPTED = (
    "empty (in this process only), redis://host:6379/0 or rediss://... (Redis), "
    "postgresql://user:password@host/db (PostgreSQL)"
)
PROBE_KEY = "callagent:probe"


def shared_state_engine(url: str) -> str:
    """Which engine ``url`` names: ``memory``, ``redis`` or ``postgresql``.

    Raises:
        ValueError: any other scheme (the message names the setting and the accepted forms).
    """
    if not url.strip():
        return "memory"
    scheme = urlsplit(url.strip()).scheme.lower()
    if scheme in {"redis", "rediss"}:
        return "redis"
    if scheme in {"postgresql", "postgres", "postgresql+psycopg"}:
        return "postgresql"
    shown = f"{scheme}://..." if scheme else "a value without a scheme"
    raise ValueError(f"{SETTING} cannot be {shown}; use {ACCEPTED}")


def open_shared_state(url: str) -> SharedState:
    """The shared state ``url`` names; nothing connects until first use (:func:`check_reachable`).

    Args:
        url: ``""`` for :class:`~integrations.shared_state.memory.MemorySharedState`,
            ``redis://`` / ``rediss://`` for Redis, ``postgresql://`` for PostgreSQL.

    Raises:
        ValueError: an unknown scheme (names ``CALLAGENT_SHARED_STATE_URL``).
    """
    engine = shared_state_engine(url)
    if engine == "redis":
        from integrations.shared_state.redis import RedisSharedState

        return RedisSharedState(url.strip())
    if engine == "postgresql":
        from integrations.shared_state.postgres import PostgresSharedState

        return PostgresSharedState(url.strip().replace("postgresql+psycopg://", "postgresql://", 1))
    return MemorySharedState()


async def check_reachable(shared: SharedState) -> None:
    """Fail start-up clearly when the shared state's server cannot be reached.

    Raises:
        SharedStateError: not reachable (not retryable; the message names the setting).
    """
    if not shared.distributed:
        return
    try:
        await shared.get(PROBE_KEY)
    except SharedStateError as e:
        raise SharedStateError(
            f"the shared state server cannot be reached ({e}): start it, or fix {SETTING}",
            retryable=False,
        ) from e
