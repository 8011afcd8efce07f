"""An outbound call while it runs: its spec, its attempt's updates, and what its end means.

:func:`outbound_spec` makes a call's :class:`~bot.call.pipeline.CallSpec` outbound for its
attempt. :class:`OutboundCalls` runs such a call: links the attempt to the call record,
adds the :class:`~processors.outbound_outcome.OutboundOutcomeObserver`, and at the end of a
browser or SIP call (no provider callbacks) ends the attempt. An inbound call runs unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from pipecat.transports.base_transport import BaseTransport

from bot.call.pipeline import CallSpec
from bot.call.runtime import Runtime
from bot.outbound.attempts import Attempts
from integrations.outbound.dispositions import Disposition
from integrations.outbound.store import DNC_SOURCES, Attempt
from processors.call_outcome import RecordSink
from processors.outbound_call import OutboundCall
from processors.outbound_outcome import OutboundOutcomeObserver

RunCall = Callable[..., Awaitable[None]]
"""``bot.call.pipeline.run_call`` (or a test's stand-in with the same arguments)."""


def outbound_spec(spec: CallSpec, attempt: Attempt, answered_by: str | None = None) -> CallSpec:
    """``spec`` as the outbound call of ``attempt`` (the callee is the CRM's "caller")."""
    return dataclasses.replace(
        spec,
        direction="outbound",
        agent=attempt.agent,
        caller=attempt.to,
        provider_call_id=spec.provider_call_id or attempt.provider_call_id,
        outbound=OutboundCall(
            attempt_id=attempt.id,
            to=attempt.to,
            variables=dict(attempt.variables),
            campaign_id=attempt.campaign_id,
            contact_id=attempt.contact_id,
            attempt=attempt.number,
            answered_by=answered_by or attempt.answered_by,
        ),
    )


class AttemptOfCall:
    """The :class:`processors.outbound_outcome.AttemptUpdates` of one running call."""

    def __init__(self, attempts: Attempts, call: OutboundCall) -> None:
        self._attempts = attempts
        self._call = call

    async def outcome(self, disposition: str) -> None:
        """Record the outcome on the attempt."""
        await self._attempts.record_outcome(self._call.attempt_id, disposition)

    async def do_not_call(self, reason: str) -> None:
        """The callee's number onto the do-not-call list, now."""
        source = reason if reason in DNC_SOURCES else "spoken"
        await self._attempts.do_not_call(self._call.to, source)

    async def machine_verdict(self, verdict: str) -> None:
        """The call's own verdict as the attempt's ``answered_by``, unless the provider gave one."""
        attempt = await self._attempts.get(self._call.attempt_id)
        if attempt is not None and attempt.answered_by is None:
            await self._attempts.set_answered_by(self._call.attempt_id, verdict)


class OutboundCalls:
    """Runs calls, joining the outbound ones to their attempts (see the module)."""

    def __init__(self, attempts: Attempts, records: RecordSink | None = None) -> None:
        self._attempts = attempts
        self._records = records

    async def run(
        self, run_call: RunCall, transport: BaseTransport, spec: CallSpec, runtime: Runtime
    ) -> None:
        """Run the call with ``run_call``; an outbound one joined to its attempt."""
        call = spec.outbound
        if call is None:
            await run_call(transport, spec, runtime)
            return
        await self._attempts.link_call(call.attempt_id, spec.call_id)
        observer = OutboundOutcomeObserver(
            call_id=spec.call_id, attempt=AttemptOfCall(self._attempts, call), records=self._records
        )
        kwargs: dict[str, Any] = {"observers": [observer]}
        try:
            await run_call(transport, spec, runtime, **kwargs)
        finally:
            if spec.transport_kind != "twilio":  # no provider callbacks end it
                await self._attempts.finish(call.attempt_id, Disposition.COMPLETED)
