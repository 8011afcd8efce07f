"""Never dead air when the LLM fails: the caller hears an apology instead."""

from __future__ import annotations

from typing import Any

from loguru import logger
from pipecat.frames.frames import ErrorFrame, Frame, TTSSpeakFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import LLMService

DEFAULT_APOLOGY = (
    "Sorry, I'm having trouble with that one. I can help with opening hours, appointments "
    "and insurance, or put you through to a person."
)


class LLMFailureApology(FrameProcessor):
    """Sits just upstream of the LLM and speaks an apology when the LLM reports an error.

    Errors from other services pass by untouched; the error itself continues
    upstream so the worker still sees it.
    """

    def __init__(self, apology: str = DEFAULT_APOLOGY, **kwargs: Any):
        super().__init__(**kwargs)
        self._apology = apology

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Answer LLM errors with a spoken apology."""
        await super().process_frame(frame, direction)
        if (
            isinstance(frame, ErrorFrame)
            and direction is FrameDirection.UPSTREAM
            and isinstance(frame.processor, LLMService)
        ):
            logger.warning(f"{self}: LLM failed, apologising to the caller")
            await self.push_frame(TTSSpeakFrame(self._apology, append_to_context=True))
        await self.push_frame(frame, direction)
