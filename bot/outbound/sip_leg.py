"""The outbound SIP leg, in the server process that holds the SIP endpoint.

An attempt on the ``sip`` channel is dialled here, whoever asked: the operator's
``POST /api/calls/outbound`` in this process (:class:`LocalSipDialer`), or a campaign
worker anywhere through ``POST /sip/dial`` with the attempt's signed token
(:class:`~bot.outbound.sip_dialer.SipDialer`). :meth:`SipOutboundLeg.dial` checks the
attempt (``sip`` channel, claimed for dialling, not dialled yet), takes a place under the
call cap, names the dial (``sipdial-...``, the attempt's provider id; the SIP Call-ID is
the call record's) and sends the INVITE in the background:

* a 180/183 marks the attempt ``ringing`` (as Twilio's ``ringing`` status callback does);
* a final non-2xx response ends the attempt as :func:`~bot.outbound.sip_dialer.sip_disposition`
  says (the Twilio status callback's equivalent), its status as the attempt's error code;
* answered, the attempt goes ``in-progress`` and the server's runner runs the outbound
  pipeline on the call; its end ends the attempt (``OutboundCalls``: the call's outcome,
  else ``completed``). Machine detection runs in that pipeline: a trunk has no carrier AMD.

Under ``--workers N`` only the worker holding the SIP port dials: on the others a dial is
forwarded to it through the shared state (:mod:`bot.outbound.sip_forward`).

Nothing here logs a number or a URI: log lines carry the attempt id, the SIP Call-ID and
status codes.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from loguru import logger

from bot.outbound.attempts import Attempts
from bot.outbound.dialer import DialError, Dialled
from bot.outbound.sip_dialer import sip_disposition
from bot.outbound.sip_forward import DialRefused, SipDialForwarding, SipForwardError
from bot.outbound.tokens import AttemptTokenError, AttemptTokens
from integrations.outbound.dispositions import Disposition
from integrations.outbound.store import DIALING, IN_PROGRESS, RINGING, Attempt
from integrations.shared_state.calls import CallInbox
from transports.sip.contracts import SipCall
from transports.sip.endpoint import SipDialError


class SipDialing(Protocol):
    """What the leg needs of the SIP endpoint (:class:`transports.sip.endpoint.SipEndpoint`)."""

    async def dial(
        self,
        to_uri: str,
        *,
        from_uri: str,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
        on_ringing: Callable[[], None] | None = None,
    ) -> SipCall:
        """INVITE ``to_uri``; the answered call (raises ``SipDialError`` on a final non-2xx).

        ``on_ringing`` is called once on the callee's first 180/183.
        """
        ...


class Slot(Protocol):
    """A place under the call cap, held from the INVITE to the call's end."""

    def release(self) -> None:
        """Give it back (idempotent)."""
        ...


SipRunner = Callable[[SipCall, Attempt, Slot], Awaitable[None]]
"""Starts the answered call's outbound pipeline (the slot is released when it ends)."""


class SipLegError(Exception):
    """Why an attempt is not dialled here; ``status`` is the HTTP status the route answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SipDialPlan:
    """The fixed parts of every outbound INVITE (from settings).

    Parameters:
        caller_id: ``CALLAGENT_SIP_CALLER_ID``: a number (the From user) or a ``sip:`` URI.
        domain: Where the trunk takes calls: ``CALLAGENT_SIP_OUTBOUND_PROXY`` (else the
            registrar), ``host[:port]``; the Request-URI is ``sip:<number>@<domain>``.
        local_host: Our advertised address (the From URI's host for a number caller id).
        ring_secs: How long the INVITE rings before it is cancelled (no-answer).
    """

    caller_id: str
    domain: str
    local_host: str
    ring_secs: float = 30.0

    def to_uri(self, number: str) -> str:
        """The Request-URI for ``number`` (E.164)."""
        return f"sip:{number}@{self.domain}"

    @property
    def from_uri(self) -> str:
        """The From URI carrying our caller id."""
        if self.caller_id.startswith(("sip:", "sips:")):
            return self.caller_id
        return f"sip:{self.caller_id}@{self.local_host}"


class SipOutboundLeg:
    """Dials ``sip`` attempts on this process's SIP endpoint (see the module).

    Args:
        tokens: Verifies the attempt tokens of ``POST /sip/dial``.
        attempts: The attempts (ends told to the listeners: campaign retries).
        plan: The INVITE's caller id and destination (None: not configured; dials refused).
        inbox: This process's inbox: dials are forwarded to the SIP-serving sibling while
            this process does not hold the port, and the siblings' are taken while it does.
    """

    def __init__(
        self,
        tokens: AttemptTokens,
        attempts: Attempts,
        plan: SipDialPlan | None,
        inbox: CallInbox | None = None,
    ) -> None:
        self.forwarding = SipDialForwarding(inbox) if inbox is not None else None
        """Forwarding to / from the sibling holding the SIP port (None: this process only)."""
        if self.forwarding is not None:
            self.forwarding.serve(self._dial_for_sibling)
        self._tokens = tokens
        self._attempts = attempts
        self._plan = plan
        self._endpoint: Callable[[], SipDialing | None] = lambda: None
        self._run: SipRunner | None = None
        self._acquire: Callable[[], Slot | None] | None = None
        self._busy: set[str] = set()  # attempts being dialled here
        self._tasks: set[asyncio.Task[None]] = set()

    def connect(
        self,
        endpoint: Callable[[], SipDialing | None],
        run: SipRunner,
        acquire: Callable[[], Slot | None],
    ) -> None:
        """Dial on the server's SIP endpoint and run answered calls with ``run``.

        Args:
            endpoint: The endpoint INVITEs go out on while this process serves SIP (None:
                SIP is off, or another worker holds the port).
            run: Starts an answered call's pipeline.
            acquire: Takes a place under the call cap (None: full or draining).
        """
        self._endpoint, self._run, self._acquire = endpoint, run, acquire

    @property
    def ready(self) -> bool:
        """Whether this process can dial over SIP now (itself, or through the serving sibling)."""
        here = self._endpoint() is not None or self.forwarding is not None
        return self._plan is not None and self._run is not None and here

    def _forwards(self) -> bool:
        """This process does not hold the SIP port but a sibling may."""
        return self._endpoint() is None and self._plan is not None and self.forwarding is not None

    async def _forward(self, token: str) -> str:
        assert self.forwarding is not None
        try:
            return await self.forwarding.forward(token)
        except SipForwardError as e:
            raise SipLegError(e.status, str(e)) from None

    async def _dial_for_sibling(self, token: str) -> str:
        """A sibling's forwarded dial: here, or refused (never forwarded again)."""
        try:
            return await self._dial_token_here(token)
        except SipLegError as e:
            raise DialRefused(e.status, str(e)) from None

    async def dial_token(self, token: str) -> str:
        """``POST /sip/dial``: the attempt the token names, dialled; returns the dial id.

        Raises:
            SipLegError: 403 a missing, forged or expired token; 404 an unknown attempt;
                409 not a ``sip`` attempt, not claimed, or dialled already; 503 no SIP
                here, or no place under the call cap (full or draining).
        """
        if self._forwards():  # another worker holds the SIP port: it dials
            return await self._forward(token)
        return await self._dial_token_here(token)

    async def _dial_token_here(self, token: str) -> str:
        if not token:
            raise SipLegError(403, "'attempt' is required: the attempt's signed token")
        try:
            attempt_id = self._tokens.verify(token)
        except AttemptTokenError as e:
            raise SipLegError(403, str(e)) from None
        attempt = await self._attempts.get(attempt_id)
        if attempt is None:
            raise SipLegError(404, "unknown attempt")
        return await self.dial(attempt)

    async def dial(self, attempt: Attempt) -> str:
        """Send the attempt's INVITE in the background; returns the dial id (see the module).

        Raises:
            SipLegError: As :meth:`dial_token` (409, 503).
        """
        if self._forwards():  # the operator's call on a worker without the SIP port
            return await self._forward(self._tokens.issue(attempt.id))
        endpoint, run, acquire, plan = self._endpoint(), self._run, self._acquire, self._plan
        if endpoint is None or run is None or acquire is None or plan is None:
            raise SipLegError(503, "this server has no SIP endpoint (CALLAGENT_SIP_LISTEN)")
        attempt = await self._attempts.get(attempt.id) or attempt  # as it is now (claimed?)
        if attempt.channel != "sip":
            raise SipLegError(409, "the attempt is not on the sip channel")
        if attempt.ended or attempt.state != DIALING:
            raise SipLegError(409, f"the attempt is {attempt.state}, not claimed for dialling")
        if attempt.provider_call_id is not None or attempt.id in self._busy:
            raise SipLegError(409, "the attempt was dialled already")
        slot = acquire()
        if slot is None:
            raise SipLegError(503, "no place under the call cap now (full or draining)")
        dial_id = f"sipdial-{secrets.token_hex(8)}"
        self._busy.add(attempt.id)
        try:
            await self._attempts.mark_dialed(attempt.id, dial_id)
        except BaseException:
            self._busy.discard(attempt.id)
            slot.release()
            raise
        task = asyncio.create_task(
            self._call(endpoint, run, plan, attempt, slot), name=f"sip-dial-{attempt.id}"
        )
        self._tasks.add(task)

        def done(_task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            self._busy.discard(attempt.id)

        task.add_done_callback(done)
        logger.bind(attempt_id=attempt.id).info(f"SIP INVITE going out ({dial_id})")
        return dial_id

    async def _call(
        self, endpoint: SipDialing, run: SipRunner, plan: SipDialPlan, attempt: Attempt, slot: Slot
    ) -> None:
        log = logger.bind(attempt_id=attempt.id)
        ringing: list[asyncio.Task[None]] = []

        def rings() -> None:
            ringing.append(asyncio.create_task(self._ringing(attempt.id)))

        try:
            call = await endpoint.dial(
                plan.to_uri(attempt.to),
                from_uri=plan.from_uri,
                timeout_s=plan.ring_secs,
                on_ringing=rings,
            )
        except SipDialError as e:
            slot.release()
            await asyncio.gather(*ringing)  # ringing is written before the end
            end = sip_disposition(e.status)
            log.info(f"SIP INVITE answered {e.status}: {end.disposition}")
            await self._attempts.finish(
                attempt.id, end.disposition, error_code=e.status, error=f"SIP {e.status}"
            )
            return
        except asyncio.CancelledError:  # the server stops while it rings (CANCEL sent)
            slot.release()
            await asyncio.shield(asyncio.gather(*ringing))
            await asyncio.shield(
                self._attempts.finish(
                    attempt.id, Disposition.FAILED, error="the server stopped while it rang"
                )
            )  # no code: a campaign tries the contact again
            raise
        except Exception as e:  # noqa: BLE001 - the endpoint failed: the attempt must still end
            slot.release()
            await asyncio.gather(*ringing)
            log.warning(f"SIP INVITE failed ({type(e).__name__})")
            await self._attempts.finish(
                attempt.id, Disposition.FAILED, error=f"SIP dial failed ({type(e).__name__})"
            )
            return
        log.info(f"SIP call answered (Call-ID {call.call_id})")
        try:
            await asyncio.gather(*ringing)  # before in-progress, never after it
            await self._attempts.mark_status(attempt.id, IN_PROGRESS)
            await run(call, attempt, slot)
        except Exception as e:  # noqa: BLE001 - never leave the callee on a dead line
            slot.release()
            log.warning(f"SIP outbound call not started ({type(e).__name__})")
            await call.hang_up()
            await self._attempts.finish(
                attempt.id, Disposition.FAILED, error=f"call not started ({type(e).__name__})"
            )

    async def _ringing(self, attempt_id: str) -> None:
        try:
            await self._attempts.mark_status(attempt_id, RINGING)
        except Exception as e:  # noqa: BLE001 - a lost progress mark must not end the dial
            logger.bind(attempt_id=attempt_id).warning(
                f"SIP ringing not recorded ({type(e).__name__})"
            )

    async def close(self) -> None:
        """Stop the INVITEs in flight (server shutdown): each is cancelled, its attempt failed."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class LocalSipDialer:
    """The ``sip`` channel's dialer inside the server (``POST /api/calls/outbound``)."""

    def __init__(self, leg: SipOutboundLeg) -> None:
        """Dial on ``leg``."""
        self._leg = leg

    async def dial(self, attempt: Attempt, public_url: str) -> Dialled:
        """Send the INVITE (raises ``DialError``, retryable when SIP is down or full)."""
        try:
            return Dialled(await self._leg.dial(attempt))
        except SipLegError as e:
            raise DialError(str(e), e.status, retryable=e.status == 503) from e
