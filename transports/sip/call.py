"""One established SIP dialog: the :class:`~transports.sip.contracts.SipCall` of the endpoint.

The endpoint (:mod:`transports.sip.endpoint`) owns the signalling and tells the call what
happened (:meth:`EndpointCall.mark_ended`, the REFER's answer and NOTIFYs); the call owns
its media, its end callbacks and the transfer's outcome.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Protocol

from loguru import logger

from transports.sip.contracts import EndReason, InviteInfo, ReferOutcome, SipDirection
from transports.sip.media import RtpMedia

TRANSFER_BYE_GRACE_S = 5.0
"""After a successful REFER the peer should BYE; if it does not, we do."""


class CallSignalling(Protocol):
    """What the call asks the endpoint to send on its dialog."""

    def send_bye(self) -> None:
        """Send BYE on the dialog."""
        ...

    def send_refer(self, target: str) -> None:
        """Send REFER with ``Refer-To: target`` on the dialog."""
        ...


EndCallback = Callable[[EndReason], Awaitable[None] | None]


class EndpointCall:
    """An answered call (inbound or outbound) with its RTP media.

    Args:
        call_id: The SIP Call-ID.
        direction: Who called whom.
        invite: What the first INVITE said.
        media: The call's RTP media (closed when the call ends).
        signalling: Sends BYE / REFER on the dialog.
    """

    def __init__(
        self,
        *,
        call_id: str,
        direction: SipDirection,
        invite: InviteInfo,
        media: RtpMedia,
        signalling: CallSignalling,
    ) -> None:
        self._call_id = call_id
        self._direction: SipDirection = direction
        self._invite = invite
        self._media = media
        self._signalling = signalling
        self._end_reason: EndReason | None = None
        self._callbacks: list[EndCallback] = []
        self._closed = asyncio.Event()
        self._media_closed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._refer: asyncio.Future[ReferOutcome] | None = None
        self._refer_status = 0
        self._transferred = False
        self._bye_after: asyncio.Task[None] | None = None
        self._log = logger.bind(provider_call_id=call_id)

    # --- SipCall ------------------------------------------------------------------------

    @property
    def call_id(self) -> str:
        """The SIP Call-ID."""
        return self._call_id

    @property
    def direction(self) -> SipDirection:
        """Who called whom."""
        return self._direction

    @property
    def invite(self) -> InviteInfo:
        """What the dialog's first INVITE said."""
        return self._invite

    @property
    def media(self) -> RtpMedia:
        """The call's audio and keypad."""
        return self._media

    @property
    def ended(self) -> bool:
        """The dialog is over."""
        return self._end_reason is not None

    @property
    def end_reason(self) -> EndReason | None:
        """Why it ended (None while it goes on)."""
        return self._end_reason

    def on_end(self, callback: EndCallback) -> None:
        """Call ``callback`` once when the dialog ends (at once if it already has)."""
        if self._end_reason is not None:
            self._spawn(self._run_callback(callback, self._end_reason))
        else:
            self._callbacks.append(callback)

    async def hang_up(self) -> None:
        """Send BYE (idempotent; nothing if the dialog already ended).

        Returns once the media is closed; the end callbacks run on (awaiting them here
        would deadlock a callback that hangs up).
        """
        self.terminate("transferred" if self._transferred else "local_bye")
        await self._media_closed.wait()

    def terminate(self, reason: EndReason) -> None:
        """Send BYE and end the call with ``reason`` (nothing if it already ended)."""
        if self._end_reason is not None:
            return
        try:
            self._signalling.send_bye()
        except Exception:
            self._log.exception("sip: BYE could not be sent")
        self.mark_ended(reason)

    async def refer(self, target: str, *, timeout_s: float = 30.0) -> ReferOutcome:
        """Transfer the peer to ``target`` with REFER and wait for the outcome (RFC 3515)."""
        if self._end_reason is not None:
            return ReferOutcome(ok=False, status=0, reason="the call has ended")
        if self._refer is not None and not self._refer.done():
            return ReferOutcome(ok=False, status=0, reason="a transfer is already in progress")
        self._refer = asyncio.get_running_loop().create_future()
        self._refer_status = 0
        try:
            self._signalling.send_refer(target)
        except Exception:
            self._log.exception("sip: REFER could not be sent")
            return ReferOutcome(ok=False, status=0, reason="REFER could not be sent")
        self._log.info("sip: REFER sent")
        try:
            outcome = await asyncio.wait_for(asyncio.shield(self._refer), timeout_s)
        except TimeoutError:
            outcome = ReferOutcome(
                ok=False, status=self._refer_status, reason="no final transfer outcome in time"
            )
            self._refer.cancel()
        self._log.info("sip: transfer outcome ok={} status={}", outcome.ok, outcome.status)
        if outcome.ok:
            self._transferred = True
            self._bye_after = self._spawn(self._bye_after_transfer())
        return outcome

    # --- the endpoint's side --------------------------------------------------------------

    def refer_answered(self, status: int, _reason: str) -> None:
        """The REFER's final response (202 Accepted, or a refusal).

        The peer's reason phrase is not kept: it is the peer's free text (it may name the
        target or the caller) and the outcome's reason goes into log lines and the record.
        """
        self._refer_status = status
        if status >= 300:
            self._resolve_refer(ReferOutcome(ok=False, status=status, reason="REFER refused"))

    def refer_progress(self, status: int, _reason: str) -> None:
        """A NOTIFY's sipfrag status about the new call (its reason phrase is not kept)."""
        self._refer_status = status
        if 200 <= status < 300:
            self._resolve_refer(ReferOutcome(ok=True, status=status, reason=""))
        elif status >= 300:
            self._resolve_refer(
                ReferOutcome(ok=False, status=status, reason="the transfer target's call failed")
            )

    def mark_ended(self, reason: EndReason) -> None:
        """The dialog is over: close the media and run the end callbacks (once)."""
        if self._end_reason is not None:
            return
        if reason == "remote_bye" and self._transferred:
            reason = "transferred"
        self._end_reason = reason
        self._log.info("sip: call ended ({})", reason)
        self._resolve_refer(
            ReferOutcome(ok=False, status=self._refer_status, reason="the call ended first")
        )
        if self._bye_after is not None and self._bye_after is not asyncio.current_task():
            self._bye_after.cancel()  # the peer's BYE came: no need to wait for ours
        self._spawn(self._close(reason))

    async def wait_closed(self) -> None:
        """Until the media is closed and the end callbacks have run."""
        await self._closed.wait()

    # --- internals ------------------------------------------------------------------------

    def _resolve_refer(self, outcome: ReferOutcome) -> None:
        if self._refer is not None and not self._refer.done():
            self._refer.set_result(outcome)

    async def _bye_after_transfer(self) -> None:
        await asyncio.sleep(TRANSFER_BYE_GRACE_S)
        if self._end_reason is None:
            await self.hang_up()

    async def _close(self, reason: EndReason) -> None:
        try:
            await self._media.close()
        except Exception:
            self._log.exception("sip: closing the media failed")
        self._media_closed.set()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            await self._run_callback(callback, reason)
        self._closed.set()

    async def _run_callback(self, callback: EndCallback, reason: EndReason) -> None:
        try:
            result = callback(reason)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self._log.exception("sip: an end-of-call callback failed")

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
