"""Builds each call's speech and language services from the settings.

One code path for both modes: the embedded engines (shared models from the
runtime, per-call Pipecat services around them) or the cloud services chosen in
settings.
"""

from __future__ import annotations

from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.llm_service import LLMService
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService

from bot.runtime import Runtime


def make_stt(runtime: Runtime) -> STTService:
    """The speech-to-text service for one call."""
    settings = runtime.settings
    if settings.stt == "cartesia":
        from pipecat.services.cartesia.stt import CartesiaSTTService

        return CartesiaSTTService(api_key=settings.cartesia_api_key)
    from integrations.speech.stt import LocalSTTService

    assert runtime.recognizer is not None
    return LocalSTTService(recognizer=runtime.recognizer)


def make_tts(runtime: Runtime) -> TTSService:
    """The text-to-speech service for one call (it outputs at the pipeline's rate)."""
    settings = runtime.settings
    if settings.tts == "cartesia":
        from pipecat.services.cartesia.tts import CartesiaTTSService

        return CartesiaTTSService(
            api_key=settings.cartesia_api_key, voice_id=settings.cartesia_voice_id
        )
    from integrations.speech.tts import LocalTTSService

    assert runtime.synthesizer is not None
    return LocalTTSService(synthesizer=runtime.synthesizer)


def make_llm(runtime: Runtime) -> LLMService | None:
    """The dialogue LLM for turns the deterministic agent cannot answer, if configured."""
    settings = runtime.settings
    if settings.llm == "groq":
        from pipecat.services.groq.llm import GroqLLMService

        return GroqLLMService(
            api_key=settings.groq_api_key,
            settings=GroqLLMService.Settings(model=settings.groq_model),
        )
    if settings.llm == "openai":
        from pipecat.services.openai.llm import OpenAILLMService

        return OpenAILLMService(
            api_key=settings.llm_api_key or "none",
            base_url=settings.llm_base_url,
            settings=OpenAILLMService.Settings(model=settings.llm_model),
        )
    return None


def optional(*processors: FrameProcessor | None) -> list[FrameProcessor]:
    """The processors that are configured, in order."""
    return [p for p in processors if p is not None]
