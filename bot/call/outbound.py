"""Builds an outbound call's answering-machine detector (see processors/answering_machine.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from bot.call.runtime import Runtime
from bot.call.services import make_vad_analyzer
from processors.answering_machine import AnsweringMachineDetector
from processors.outbound_call import OutboundCall

DEFAULT_NO_SPEECH_SECS = 2.0


class OutboundSpec(Protocol):
    """What the detector needs of a call's spec (:class:`bot.call.pipeline.CallSpec`)."""

    @property
    def outbound(self) -> OutboundCall | None:
        """The outbound call (None: inbound)."""
        ...


class _KeepMissing(dict[str, str]):
    """``str.format_map`` values that leave a placeholder with no value as written."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render_line(template: str, variables: Mapping[str, str]) -> str:
    """``template`` with the contact's ``{variables}`` filled in (missing ones left as is)."""
    try:
        return template.format_map(_KeepMissing(variables))
    except (ValueError, IndexError, AttributeError):
        return template


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
    config = getattr(runtime.agent, "outbound", None)
    if voicemail_line is None:
        template = getattr(config, "voicemail", None) or ""
        voicemail_line = render_line(str(template), outbound.variables)
    no_speech = getattr(config, "no_speech_secs", None) or DEFAULT_NO_SPEECH_SECS
    return AnsweringMachineDetector(
        vad_analyzer=make_vad_analyzer(runtime),
        voicemail_line=voicemail_line,
        answered_by=outbound.answered_by,
        no_speech_secs=float(no_speech),
    )
