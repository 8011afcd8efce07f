"""The calls this process runs now, each with its pipeline worker (for the drain).

``run_call`` adds a call when its pipeline starts and removes it when the pipeline ends;
the server's drain (``bot/web/drain.py``) reads them to end the calls that outlive
it, recycling counts :attr:`LiveCalls.started`, and provider callbacks for an outbound
call reach it by its attempt id (:meth:`LiveCalls.deliver`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipecat.frames.frames import Frame
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
        attempt_id: The outbound attempt the call answers (None: an inbound call).
    """

    call_id: str
    agent: str | None
    transport_kind: str
    provider_call_id: str | None
    transport: BaseTransport
    worker: PipelineWorker
    attempt_id: str | None = None


class LiveCalls:
    """The calls running in this process, by call id."""

    def __init__(self) -> None:
        self._calls: dict[str, LiveCall] = {}
        self._attempts: dict[str, str] = {}  # attempt id -> call id
        self.started = 0
        """Calls started in this process since it began."""

    def add(self, call: LiveCall) -> None:
        """A call's pipeline started."""
        self._calls[call.call_id] = call
        if call.attempt_id:
            self._attempts[call.attempt_id] = call.call_id
        self.started += 1

    def remove(self, call_id: str) -> None:
        """A call's pipeline ended."""
        call = self._calls.pop(call_id, None)
        if call is not None and call.attempt_id:
            self._attempts.pop(call.attempt_id, None)

    async def deliver(self, attempt_id: str, frame: Frame) -> bool:
        """Queue ``frame`` into the call answering ``attempt_id``; False when it is not here.

        Twilio's asynchronous ``AnsweredBy`` arrives on its own HTTP callback while the
        call's pipeline runs: the callback hands its frame to the call found here.
        """
        call = self._calls.get(self._attempts.get(attempt_id, ""))
        if call is None:
            return False
        await call.worker.queue_frame(frame)
        return True

    def all(self) -> list[LiveCall]:
        """The calls running now."""
        return list(self._calls.values())

    def __len__(self) -> int:
        return len(self._calls)
