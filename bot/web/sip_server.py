"""The SIP endpoint beside the web server: started and stopped with the app, runs each call.

With ``CALLAGENT_SIP_LISTEN`` set, the app's lifespan (``bot/web/app.py``) starts a
:class:`SipServer`: the SIP endpoint (``transports/sip/endpoint.py``) on that UDP address,
admitting INVITEs under the process's call cap and drain (:mod:`bot.web.sip_admission`),
and each established call runs the same pipeline as a Twilio call (``run_call`` through
the server's ``CallManager``: the call's slot, the live-calls registry the drain reads, its
record). The Request-URI's user part picks the agent when it names one of the server's
agents (``sip:appointment_reminders@host``); anything else (a number) reaches the default
agent.

**Which process binds SIP under ``--workers N``:** the first worker to bind the port. A
UDP SIP dialog lives in one process (its transactions, its RTP sockets), and a UDP socket
shared by several processes would hand a dialog's requests (ACK, BYE, re-INVITE) to any
of them, so exactly one process serves SIP. The others stand by and try to bind it every
:data:`REBIND_S` seconds: when the serving worker exits (recycled, crashed, stopped), one
of them takes the port over. While a worker drains it keeps the port: its live calls keep
their dialogs, and new INVITEs get 503 with ``Retry-After``. The serving worker holds a
lease in the shared state, and the others forward their SIP dials to it
(``bot/outbound/sip_forward.py``). ``/readyz`` shows which role
this process has (``sip.role``: ``serving`` or ``standby``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Literal, Protocol

from loguru import logger

from bot.call.pipeline import run_call
from bot.call.runtime import Runtime
from bot.call.transport import sip_call
from bot.settings import Settings
from bot.web.admission import Admission, Refused
from bot.web.call_manager import CallStarter
from bot.web.sip_admission import ROUTE, SipCallAdmission
from transports.input_batching import BatchingPolicy
from transports.sip.config import SipEndpointConfig
from transports.sip.contracts import Admission as SipAdmission
from transports.sip.contracts import CallHandler, SipCall

REBIND_S = 5.0
"""How often a standing-by worker tries to take the SIP port over."""

SipRole = Literal["off", "serving", "standby"]


class Endpoint(Protocol):
    """What the server needs of ``transports.sip.endpoint.SipEndpoint``."""

    async def start(self) -> None:
        """Bind and serve (raises ``OSError`` when the address is taken)."""
        ...

    async def stop(self) -> None:
        """Hang up every call and unbind."""
        ...


class ServingLease(Protocol):
    """Tells the deployment which worker serves SIP (``bot/outbound/sip_forward.py``)."""

    async def hold(self) -> None:
        """This process holds the SIP port now."""
        ...

    async def release(self) -> None:
        """This process gives the SIP port up."""
        ...


EndpointFactory = Callable[[Settings, CallHandler, SipAdmission], Endpoint]
"""Builds the endpoint from the settings, the call handler and the admission."""


def endpoint_config(settings: Settings) -> SipEndpointConfig:
    """The endpoint's configuration from ``CALLAGENT_SIP_*`` (checked when they were loaded)."""
    host, port = settings.sip_listen_address
    return SipEndpointConfig(
        listen_host=host,
        listen_port=port,
        advertised_ip=settings.sip_advertised_ip,
        rtp_ports=settings.sip_rtp_port_range,
        trunks=tuple(str(n) for n in settings.sip_trunk_networks),
        username=settings.sip_username,
        password=settings.sip_password,
        # registered at a carrier with its addresses allowlisted: its INVITEs are trusted by
        # source (carriers do not answer a 401); otherwise the credentials challenge INVITEs
        challenge_inbound=not (settings.sip_registrar and settings.sip_trunks),
        registrar=settings.sip_registrar,
        outbound_proxy=settings.sip_outbound_proxy,
        caller_id=settings.sip_caller_id,
    )


def default_endpoint(settings: Settings, handler: CallHandler, admission: SipAdmission) -> Endpoint:
    """The real SIP endpoint (``transports/sip/endpoint.py``), configured from the settings."""
    from transports.sip.endpoint import SipEndpoint

    return SipEndpoint(endpoint_config(settings), handler, admission)


class SipServer:
    """The SIP side of one server process (see the module).

    Args:
        settings: The server's settings (``CALLAGENT_SIP_*``, ``CALLAGENT_WORKERS``).
        runtime: The server's runtime (the calls' models, records, live calls).
        start_call: The server's ``CallManager.start``.
        admission: The process's admission (the SIP INVITEs share its cap and drain).
        endpoint_factory: Builds the endpoint (tests pass their own).
        batching: The server's input batching policy (as for Twilio calls).
        rebind_s: How often a standing-by worker tries the port.
        lease: Held while this process serves SIP, so that siblings forward their SIP
            dials here.
    """

    def __init__(
        self,
        settings: Settings,
        runtime: Runtime,
        start_call: CallStarter,
        admission: Admission,
        *,
        endpoint_factory: EndpointFactory = default_endpoint,
        batching: BatchingPolicy | None = None,
        rebind_s: float = REBIND_S,
        lease: ServingLease | None = None,
    ) -> None:
        self._lease = lease
        self._batching = batching
        self._settings = settings
        self._runtime = runtime
        self._start_call = start_call
        self._admission = admission
        self.admission = SipCallAdmission(admission)
        self._factory = endpoint_factory
        self._rebind_s = rebind_s
        self.endpoint: Endpoint | None = None
        """The endpoint while this process serves SIP (outbound dialling uses it)."""
        self._standby: asyncio.Task[None] | None = None
        self._calls = 0

    @property
    def role(self) -> SipRole:
        """``serving`` (this process holds the SIP port), ``standby`` or ``off``."""
        if not self._settings.sip_enabled:
            return "off"
        return "serving" if self.endpoint is not None else "standby"

    def status(self) -> dict[str, Any] | None:
        """What ``/readyz`` shows of SIP (no caller data); None when SIP is off."""
        if not self._settings.sip_enabled:
            return None
        return {
            "role": self.role,
            "listen": self._settings.sip_listen,
            "calls": self._calls,
        }

    async def start(self) -> None:
        """Bind the SIP port, or (under ``--workers N``) stand by while a sibling holds it.

        Raises:
            OSError: the port cannot be bound and this process serves alone.
        """
        if not self._settings.sip_enabled:
            return
        try:
            await self._bind()
        except OSError as e:
            if self._settings.workers <= 1:
                logger.error(f"SIP: cannot listen on {self._settings.sip_listen} ({e})")
                raise
            logger.info(
                f"SIP: {self._settings.sip_listen} is served by another worker; this one "
                f"stands by (tries it every {self._rebind_s:g} s)"
            )
            self._standby = asyncio.create_task(self._take_over(), name="sip-standby")

    async def stop(self) -> None:
        """Stop standing by; hang up what is left and unbind."""
        if self._standby is not None:
            self._standby.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._standby
            self._standby = None
        endpoint, self.endpoint = self.endpoint, None
        if endpoint is not None:
            if self._lease is not None:
                await self._lease.release()  # siblings stop forwarding dials here
            await endpoint.stop()
            logger.info("SIP: stopped")

    async def _bind(self) -> None:
        endpoint = self._factory(self._settings, self.handle, self.admission)
        await endpoint.start()
        self.endpoint = endpoint
        logger.info(f"SIP: listening on {self._settings.sip_listen} (UDP)")
        if self._lease is not None:
            await self._lease.hold()  # siblings' SIP dials are forwarded here

    async def _take_over(self) -> None:
        while self.endpoint is None:
            await asyncio.sleep(self._rebind_s)
            if not self._admission.admitting:
                return  # draining: this process takes no calls any more
            try:
                await self._bind()
            except OSError:
                continue
            logger.info("SIP: took the port over from a worker that stopped")

    async def handle(self, call: SipCall) -> None:
        """Run one established call to its end (the endpoint's :data:`CallHandler`)."""
        slot = self.admission.take(call.call_id)
        if slot is None:  # not admitted through us (e.g. an outbound call): take one now
            try:
                slot = self._admission.acquire(ROUTE, call.invite.source[0])
            except Refused:
                logger.warning(f"SIP call {call.call_id} refused after answer: no free slot")
                await call.hang_up()
                return
        agent = self._agent_for(call.invite.callee)
        try:
            ready = sip_call(call, batching=self._batching, agent=agent)
        except Exception:
            slot.release()
            await call.hang_up()
            raise
        self._calls += 1
        try:
            with logger.contextualize(call_id=ready.spec.call_id):
                logger.info(f"SIP call {call.call_id} ({call.direction}) started")
                task = self._start_call(
                    run_call(ready.transport, ready.spec, self._runtime), ready.spec, slot
                )
                await asyncio.shield(task)  # stopping the endpoint does not cancel the call
        finally:
            self._calls -= 1
            await call.hang_up()  # the pipeline ended first: BYE (nothing if already over)

    def _agent_for(self, callee: str) -> str | None:
        """The agent the Request-URI names (its key), else None (the default agent)."""
        if not callee:
            return None
        try:
            self._runtime.for_agent(callee)
        except ValueError:
            return None
        return callee
