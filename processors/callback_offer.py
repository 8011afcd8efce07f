"""After a failed transfer, take the caller's answer to "shall we call you back?".

The transfer processor says the failure line and the offer, and pushes a
:class:`~processors.frames.TransferResultFrame` upstream; this processor (in front of the
dialogue) then reads the caller's next turn: yes records a callback on the customer's
record (a :class:`~processors.frames.CrmUpdateFrame` upstream) and confirms it; no is
acknowledged; anything else goes on to the dialogue as usual.
"""

from __future__ import annotations

from typing import Any

from loguru import logger
from pipecat.frames.frames import Frame, TTSSpeakFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from processors.agent_definition import TransferConfig
from processors.frames import (
    BotReplyFrame,
    CallerRecordFrame,
    CrmAction,
    CrmUpdateFrame,
    NLUResultFrame,
    TransferResultFrame,
)

AFFIRM = "affirm"
DENY = "deny"


class CallbackOfferProcessor(FrameProcessor):
    """Answers the callback offer made after a failed transfer."""

    def __init__(self, config: TransferConfig, *, call_id: str, **kwargs: Any):
        """Configure the offer's lines.

        Args:
            config: The agent's transfer settings (confirmation and decline lines).
            call_id: For log lines.
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._config = config
        self._call_id = call_id
        self._customer_id = ""
        self._armed = False
        self.callback_requested = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Arm on a failed transfer; answer the next yes or no."""
        await super().process_frame(frame, direction)
        if isinstance(frame, TransferResultFrame) and direction is FrameDirection.UPSTREAM:
            self._armed = not frame.ok and bool(self._config.callback_offer)
        elif isinstance(frame, CallerRecordFrame) and frame.record is not None:
            self._customer_id = frame.record.customer_id
        elif isinstance(frame, NLUResultFrame) and self._armed:
            self._armed = False
            if frame.intent == AFFIRM:
                await self._accept()
                return
            if frame.intent == DENY:
                await self._say(self._config.callback_declined)
                return
        await self.push_frame(frame, direction)

    async def _accept(self) -> None:
        self.callback_requested = True
        logger.info("caller accepted a callback")
        await self.push_frame(
            CrmUpdateFrame(
                action=CrmAction.REQUEST_CALLBACK,
                customer_id=self._customer_id,
                params={"note": "Transfer failed; caller asked for a callback"},
            ),
            FrameDirection.UPSTREAM,
        )
        await self._say(self._config.callback_confirmed)

    async def _say(self, text: str) -> None:
        await self.push_frame(BotReplyFrame(text=text, intent="callback_offer"))
        await self.push_frame(TTSSpeakFrame(text, append_to_context=True))
