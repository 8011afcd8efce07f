"""Builds each call's speech and language services from the settings.

One code path for both modes: the embedded engines (shared models from the
runtime, per-call Pipecat services around them) or the cloud services chosen in
settings.
"""

from __future__ import annotations

from typing import Any

from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer
from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.vad_analyzer import VADAnalyzer
from pipecat.pipeline.service_switcher import ServiceSwitcher, ServiceSwitcherStrategyFailover
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.llm_service import LLMService
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService

from bot.call.runtime import Runtime
from integrations.speech.early_transcription import EarlyTranscriptionPolicy
from integrations.speech.nbest import TurnReadings


def make_stt(runtime: Runtime, readings: TurnReadings | None = None) -> FrameProcessor:
    """The speech-to-text service for one call (a cloud STT fails over to the embedded one).

    Args:
        runtime: The process's shared models and settings.
        readings: Where the embedded STT logs each segment's readings for the NLU.
    """
    from integrations.speech.stt import LocalSTTService

    settings = runtime.settings
    early = _early_policy(runtime)
    local = (
        LocalSTTService(
            recognizer=runtime.recognizer,
            early=early,
            speculation=runtime.speculation,
            readings=readings,
        )
        if runtime.recognizer is not None
        else None
    )
    if settings.stt == "cartesia":
        from pipecat.services.cartesia.stt import CartesiaSTTService

        cloud = CartesiaSTTService(
            api_key=settings.cartesia_api_key, base_url=settings.cartesia_base_url
        )
        return _with_fallback(cloud, local)
    assert local is not None
    return local


def make_whole_turn(
    runtime: Runtime, readings: TurnReadings | None = None
) -> FrameProcessor | None:
    """Transcribes a turn the VAD split into segments again, whole (None: off or a cloud STT).

    Goes right after the user aggregator. Args as for :func:`make_stt`.
    """
    from processors.whole_turn import WholeTurnTranscriber

    settings = runtime.settings
    if not settings.whole_turn_stt or settings.stt != "moonshine" or runtime.recognizer is None:
        return None
    return WholeTurnTranscriber(
        recognizer=runtime.recognizer,
        readings=readings,
        max_pause_secs=settings.whole_turn_max_pause_secs,
        speculation=runtime.speculation,
    )


def make_tts(runtime: Runtime) -> FrameProcessor:
    """The text-to-speech service for one call, rendering at the pipeline's output rate.

    A cloud TTS fails over to the embedded one when that is installed.
    """
    from integrations.speech.tts import LocalTTSService

    settings = runtime.settings
    local = (
        LocalTTSService(synthesizer=runtime.synthesizer)
        if runtime.synthesizer is not None
        else None
    )
    if settings.tts == "cartesia":
        from pipecat.services.cartesia.tts import CartesiaTTSService

        cloud = CartesiaTTSService(
            api_key=settings.cartesia_api_key,
            voice_id=settings.cartesia_voice_id,
            url=f"{settings.cartesia_base_url.rstrip('/')}/tts/websocket",
        )
        return _with_fallback(cloud, local)
    assert local is not None
    return local


def make_vad_analyzer(runtime: Runtime) -> VADAnalyzer:
    """The caller's voice activity detector for one call (Silero, phone-tuned, shared model)."""
    from pipecat.audio.vad.vad_analyzer import VADParams

    from integrations.speech.vad import PhoneVADAnalyzer

    settings = runtime.settings
    return PhoneVADAnalyzer(
        params=VADParams(start_secs=settings.vad_start_secs, stop_secs=settings.vad_stop_secs),
        noise_gate=settings.vad_noise_gate,
    )


def make_turn_analyzer(runtime: Runtime) -> BaseTurnAnalyzer:
    """The end-of-turn model for one call: Smart Turn v3, started early when configured."""
    from integrations.speech.early_turn import EarlySmartTurnAnalyzer, shared_smart_turn_session

    early = _early_policy(runtime)
    params = SmartTurnParams(stop_secs=runtime.settings.turn_max_pause_secs)
    if early:
        return EarlySmartTurnAnalyzer(
            early=early,
            params=params,
            session=shared_smart_turn_session(),
            speculation=runtime.speculation,
        )
    return LocalSmartTurnAnalyzerV3(params=params)


def _early_policy(runtime: Runtime) -> EarlyTranscriptionPolicy | None:
    secs = runtime.settings.early_turn_secs
    return EarlyTranscriptionPolicy(quiet_secs=secs) if secs > 0 else None


def _with_fallback(
    cloud: STTService | TTSService, local: STTService | TTSService | None
) -> FrameProcessor:
    if local is None:
        return cloud
    return ServiceSwitcher(services=[cloud, local], strategy_type=ServiceSwitcherStrategyFailover)


def make_llm(runtime: Runtime) -> LLMService[Any] | None:
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
