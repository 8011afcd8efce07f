"""Keeping the trunk's REGISTER binding alive (aiosipua's :class:`~aiosipua.Registration`).

aiosipua refreshes a granted binding at 90 % of its interval and answers digest challenges,
but after a failure, an expiry or an unanswered REGISTER it stops; this keeps trying every
``register_retry_s`` until the registrar grants the binding again.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiosipua import Registration, RegistrationState, SipDigestAuth, SipUAC
from loguru import logger

from transports.sip.config import SipEndpointConfig, parse_hostport


class TrunkRegistration:
    """REGISTER at the configured registrar and keep the binding.

    Args:
        uac: The endpoint's UAC (its socket sends the REGISTERs; it routes their responses).
        config: The registrar, credentials, interval and retry interval.
    """

    def __init__(self, uac: SipUAC, config: SipEndpointConfig) -> None:
        host, port = parse_hostport(config.registrar)
        auth = SipDigestAuth(config.username, config.password) if config.username else None
        user = f"{config.username}@" if config.username else ""
        self._registration = Registration(
            uac,
            f"sip:{user}{host}",
            (host, port),
            expires=config.register_expires_s,
            auth=auth,
            user_agent=config.user_agent,
        )
        self._registration.on_registered = lambda _r: self._granted.set()
        self._registration.on_failed = self._on_lost
        self._registration.on_expired = lambda _r: self._lost.set()
        self._retry_s = config.register_retry_s
        self._granted = asyncio.Event()
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.attempts = 0

    @property
    def state(self) -> RegistrationState:
        """The binding's state (aiosipua's)."""
        return self._registration.state

    @property
    def registered(self) -> bool:
        """The registrar holds the binding now."""
        return self._registration.state == RegistrationState.REGISTERED

    @property
    def granted_expires(self) -> int:
        """The interval the registrar granted (0 before the first grant)."""
        return self._registration.granted_expires

    def start(self) -> None:
        """Start registering (and keep at it in the background)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._keep())

    def stop(self) -> None:
        """Stop retrying and remove the binding (``Expires: 0``)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.registered:
            with contextlib.suppress(Exception):
                self._registration.unregister()

    def _on_lost(self, _registration: Registration, status: int, _reason: str) -> None:
        logger.warning("sip: REGISTER failed with {}", status)
        self._lost.set()

    async def _keep(self) -> None:
        while True:
            self._granted.clear()
            self._lost.clear()
            self.attempts += 1
            try:
                self._registration.register()
            except Exception as e:  # e.g. the registrar's name does not resolve: retry later
                logger.warning("sip: REGISTER not sent ({})", type(e).__name__)
                await asyncio.sleep(self._retry_s)
                continue
            try:
                await asyncio.wait_for(self._granted.wait(), self._retry_s)
            except TimeoutError:
                continue
            logger.info("sip: registered for {} s", self._registration.granted_expires)
            await self._lost.wait()
            logger.warning("sip: registration lost; registering again")
