"""The calls this process runs now, each with its pipeline worker (for the drain).

``run_call`` adds a call when its pipeline starts and removes it when the pipeline ends;
the server's drain (``bot/serving/drain.py``) reads them to end the calls that outlive
it, and recycling counts :attr:`LiveCalls.started`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipecat.pipeline.worker import PipelineWorker
from pipecat.transports.base_transport import BaseTransport


@dataclass(frozen=True)
class LiveCall:
    """One running call: its ids, its transport and its pipeline worker.

    Parameters:
        call_id: Our id for the call.
        agent: The agent's key (None: the default agent).
        transport_kind: ``twilio``, ``webrtc``, ``daily`` or ``livekit``.
        provider_call_id: The provider's id (Twilio ``CallSid``), if any.
        transport: The call's transport.
        worker: The call's pipeline worker (frames can be queued into the live call).
    """

    call_id: str
    agent: str | None
    transport_kind: str
    provider_call_id: str | None
    transport: BaseTransport
    worker: PipelineWorker


class LiveCalls:
    """The calls running in this process, by call id."""

    def __init__(self) -> None:
        self._calls: dict[str, LiveCall] = {}
        self.started = 0
        """Calls started in this process since it began."""

    def add(self, call: LiveCall) -> None:
        """A call's pipeline started."""
        self._calls[call.call_id] = call
        self.started += 1

    def remove(self, call_id: str) -> None:
        """A call's pipeline ended."""
        self._calls.pop(call_id, None)

    def all(self) -> list[LiveCall]:
        """The calls running now."""
        return list(self._calls.values())

    def __len__(self) -> int:
        return len(self._calls)
