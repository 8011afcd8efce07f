"""Simulated phones: the wire-independent phone and the wires that carry its calls.

:mod:`simulator.phone.base` is the phone itself (the 20 ms clock, the caller's audio and
line, the ear that hears the bot, turn and barge-in measurement); a call goes over
Twilio Media Streams (:mod:`simulator.phone.twilio`, :class:`TwilioCallEmulator`) or
over SIP (:mod:`simulator.phone.sip`, :class:`SipCallEmulator`) with the same API. The
names below are what the tests, benches and scenarios import from ``simulator.phone``.
"""

from simulator.phone.base import PhoneCall
from simulator.phone.line import LineConditions, _Line, mix_pcm16
from simulator.phone.measure import (
    DEFAULT_FROM,
    DEFAULT_TO,
    DTMF_DIGITS,
    FRAME_BYTES,
    FRAME_S,
    FRAME_SAMPLES,
    SPEECH_RMS,
    BargeInMeasurement,
    CallEndedError,
    EmulatorStats,
    TurnMeasurement,
    voiced_span,
)
from simulator.phone.sip import (
    SipCallEmulator,
    SipCallRejectedError,
    SipTarget,
    place_sip_call,
)
from simulator.phone.twilio import (
    StreamInstructions,
    TwilioCallEmulator,
    new_sid,
    parse_stream_twiml,
    place_call,
)

__all__ = [
    "DEFAULT_FROM",
    "DEFAULT_TO",
    "DTMF_DIGITS",
    "FRAME_BYTES",
    "FRAME_S",
    "FRAME_SAMPLES",
    "SPEECH_RMS",
    "BargeInMeasurement",
    "CallEndedError",
    "EmulatorStats",
    "LineConditions",
    "PhoneCall",
    "SipCallEmulator",
    "SipCallRejectedError",
    "SipTarget",
    "StreamInstructions",
    "TurnMeasurement",
    "TwilioCallEmulator",
    "_Line",
    "mix_pcm16",
    "new_sid",
    "parse_stream_twiml",
    "place_call",
    "place_sip_call",
    "voiced_span",
]
