"""An outbound call's answering-machine detector (see processors/answering_machine.py).

Also readies the opening's speech while the callee picks up (:func:`warm_opening`), so
the opening follows a person's "hello" without waiting for the TTS.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from loguru import logger

from bot.call.runtime import Runtime
from bot.call.services import make_vad_analyzer
from integrations.speech.cache import CachingSynthesizer
from integrations.speech.tts import split_clauses
from processors.answering_machine import AnsweringMachineDetector
from processors.machine_verdict import VerdictStrategy, default_strategies, own_strategies
from processors.outbound_call import OutboundCall
from processors.outbound_config import MissingVariablesError, OutboundConfig

DEFAULT_NO_SPEECH_SECS = 2.0
PROVIDER_AMD_TRANSPORTS = frozenset({"twilio"})
"""Transports whose provider reports its own machine verdict (Twilio ``AnsweredBy``)."""


class OutboundSpec(Protocol):
    """What the detector needs of a call's spec (:class:`bot.call.pipeline.CallSpec`)."""

    @property
    def outbound(self) -> OutboundCall | None:
        """The outbound call (None: inbound)."""
        ...

    @property
    def transport_kind(self) -> str:
        """``twilio``, ``sip``, ``webrtc``, ..."""
        ...


def verdict_strategies(transport_kind: str) -> list[VerdictStrategy]:
    """Who judges person or machine on a call over ``transport_kind``.

    Twilio's asynchronous AMD joins the agent's own detection; a SIP trunk (no carrier AMD
    exists there) and the browser have only the agent's own: the beep, the words and the
    speech's timing, all in the pipeline.
    """
    if transport_kind in PROVIDER_AMD_TRANSPORTS:
        return default_strategies()
    return own_strategies()


def make_answering_machine(
    runtime: Runtime, spec: OutboundSpec, voicemail_line: str | None = None
) -> AnsweringMachineDetector | None:
    """The answering-machine detector for an outbound call (None: an inbound call).

    Args:
        runtime: The process's shared models and settings.
        spec: The call (its ``outbound`` says who is called, and the provider's verdict).
        voicemail_line: The message left on a machine, rendered; None: the agent's
            ``outbound.voicemail`` template with the contact's variables. With neither,
            a machine is hung up on without a message.
    """
    outbound = spec.outbound
    if outbound is None:
        return None
    config = runtime.agent.outbound
    if voicemail_line is None:
        voicemail_line = _voicemail(config, outbound)
    no_speech = config.no_speech_secs if config is not None else DEFAULT_NO_SPEECH_SECS
    return AnsweringMachineDetector(
        vad_analyzer=make_vad_analyzer(runtime),
        voicemail_line=voicemail_line,
        strategies=verdict_strategies(spec.transport_kind),
        answered_by=outbound.answered_by,
        no_speech_secs=float(no_speech),
    )


def _voicemail(config: OutboundConfig | None, outbound: OutboundCall) -> str:
    """The agent's voicemail for this contact ("": none, or a variable it needs is missing).

    The dialler refuses a contact without the variables the script declares, so a missing
    one here is a CRM field the message uses: no message rather than a broken one.
    """
    if config is None:
        return ""
    try:
        return config.render_voicemail(outbound.variables)
    except MissingVariablesError as e:
        logger.warning(f"no voicemail message: {e}")  # names the placeholders, not values
        return ""


async def warm_opening(runtime: Runtime, outbound: OutboundCall | None) -> int:
    """Render the opening's clauses into the embedded TTS's cache; how many were rendered.

    Called as the call connects: the callee's "hello" and the detector's pause (about a
    second) leave time to synthesise what the TTS would otherwise start on only when the
    opening goes out (the greeting by name is never cached: every contact's name differs).
    Nothing when the call is inbound, the TTS is a cloud one, or the opening needs a CRM
    field the contact's variables do not give (it is rendered as the call says it then).
    """
    config = runtime.agent.outbound
    synthesizer = runtime.synthesizer
    if outbound is None or config is None or not config.opening:
        return 0
    if runtime.settings.tts == "cartesia" or not isinstance(synthesizer, CachingSynthesizer):
        return 0
    try:
        text = config.render_opening(outbound.variables)
    except MissingVariablesError:
        return 0
    try:
        return await asyncio.to_thread(synthesizer.warm, split_clauses(text))
    except Exception as e:  # noqa: BLE001 - a failed warm-up only costs the TTS's time later
        logger.warning(f"opening not pre-rendered: {type(e).__name__}")
        return 0
