"""Who hears that an outbound attempt ended (e.g. the campaign runner, to schedule a retry)."""

from __future__ import annotations

from typing import Protocol

from loguru import logger

from integrations.outbound.store import Attempt


class AttemptListener(Protocol):
    """Told once when an attempt ends (provider callback, browser hang-up, failed dial)."""

    async def attempt_ended(self, attempt: Attempt) -> None:
        """``attempt`` ended (``attempt.ended``; its disposition is final)."""
        ...


class AttemptListeners:
    """The server's listeners; a failing listener is logged and never stops the others."""

    def __init__(self) -> None:
        self._listeners: list[AttemptListener] = []

    def add(self, listener: AttemptListener) -> None:
        """Tell ``listener`` about every attempt that ends from now on."""
        self._listeners.append(listener)

    async def notify(self, attempt: Attempt) -> None:
        """Tell every listener that ``attempt`` ended."""
        for listener in list(self._listeners):
            try:
                await listener.attempt_ended(attempt)
            except Exception:
                logger.bind(attempt_id=attempt.id).exception(
                    f"attempt listener {type(listener).__name__} failed"
                )
