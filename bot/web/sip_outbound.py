"""The server's outbound SIP calls: the leg joined to the SIP endpoint, the call cap and runs.

:func:`connect_sip_outbound` gives the :class:`~bot.outbound.sip_leg.SipOutboundLeg` what
it needs of the server (``bot/web/app.py`` calls it once): the endpoint while this process
serves SIP (``app.state.sip``, ``bot/web/sip_server.py``), a place under the process's call
cap for each INVITE (held from the ringing to the call's end), and the answered call run
as an outbound call (``sip_call`` -> the attempt's outbound spec -> ``OutboundCalls.run``
in the server's ``CallManager``), hung up when its pipeline ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from loguru import logger

from bot.call.runtime import Runtime
from bot.call.transport import sip_call
from bot.outbound.in_call import RunCall, outbound_spec
from bot.outbound.server import Outbound
from bot.outbound.sip_leg import SipDialing, Slot
from bot.web.admission import Admission, CallSlot, Refused
from bot.web.call_manager import CallStarter
from integrations.outbound.store import Attempt
from transports.input_batching import BatchingPolicy
from transports.sip.contracts import SipCall

ROUTE = "sip-outbound"
"""The admission route name of outbound SIP calls (refusals are counted by it)."""
CLIENT = "sip-outbound"
"""The admission client of outbound SIP calls (the server itself dials)."""


def connect_sip_outbound(
    outbound: Outbound,
    runtime: Runtime,
    endpoint: Callable[[], object | None],
    admission: Admission,
    start_call: CallStarter,
    run_call: RunCall,
    batching: BatchingPolicy | None = None,
) -> None:
    """Join ``outbound.sip`` to the server (see the module).

    Args:
        outbound: The server's outbound parts.
        runtime: The server's runtime.
        endpoint: The SIP endpoint while this process serves SIP (``SipServer.endpoint``).
        admission: The process's call cap and drain.
        start_call: The server's ``CallManager.start``.
        run_call: Runs a call's pipeline (``bot.call.pipeline.run_call``).
        batching: The server's input batching (as for inbound SIP calls).
    """

    def dialing() -> SipDialing | None:
        # SipServer types its endpoint by what it starts and stops; the real one dials too
        return cast(SipDialing | None, endpoint())

    def acquire() -> Slot | None:
        try:
            return admission.acquire(ROUTE, CLIENT)
        except Refused:
            return None

    async def run(call: SipCall, attempt: Attempt, slot: Slot) -> None:
        ready = sip_call(call, batching=batching)
        spec = outbound_spec(ready.spec, attempt)
        logger.bind(call_id=spec.call_id, attempt_id=attempt.id).info(
            f"outbound SIP call {call.call_id} started"
        )
        task = start_call(
            outbound.calls.run(run_call, ready.transport, spec, runtime),
            spec,
            cast(CallSlot, slot),
        )
        task.add_done_callback(lambda _t: _hang_up_soon(call))

    outbound.sip.connect(dialing, run, acquire)


def _hang_up_soon(call: SipCall) -> None:
    """BYE once the pipeline ended (nothing if the dialog is over already)."""
    if not call.ended:
        task = asyncio.get_running_loop().create_task(call.hang_up(), name="sip-outbound-bye")
        _pending.add(task)
        task.add_done_callback(_pending.discard)


_pending: set[asyncio.Task[None]] = set()
