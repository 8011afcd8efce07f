"""Placing one outbound call: caller id, ringing time, machine detection (bot/outbound/)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings


class DialerSettings(BaseSettings):
    """Placing one outbound call: caller id, ringing time, machine detection (bot/outbound/)."""

    outbound_from_number: str = Field(
        default="",
        validation_alias="CALLAGENT_OUTBOUND_FROM_NUMBER",
        description=(
            "The caller id of outbound Twilio calls (E.164, a number of the Twilio account); "
            "needed for POST /api/calls/outbound and `callagent call` on Twilio."
        ),
    )
    outbound_ring_secs: int = Field(
        default=30,
        ge=5,
        le=600,
        validation_alias="CALLAGENT_OUTBOUND_RING_SECS",
        description=(
            "How long an outbound call rings before it counts as no-answer (Twilio Timeout; "
            "the browser's incoming-call screen)."
        ),
    )
    outbound_machine_detection: Literal["DetectMessageEnd", "Enable", "off"] = Field(
        default="DetectMessageEnd",
        validation_alias="CALLAGENT_OUTBOUND_MACHINE_DETECTION",
        description=(
            "Twilio's answering-machine detection on outbound calls (asynchronous: its "
            "AnsweredBy joins the agent's own detection): DetectMessageEnd, Enable or off."
        ),
    )
    campaign_channel: Literal["twilio", "sip"] = Field(
        default="twilio",
        validation_alias="CALLAGENT_CAMPAIGN_CHANNEL",
        description=(
            "How campaigns place their calls: twilio (calls.create) or sip (an INVITE through "
            "the SIP trunk, CALLAGENT_SIP_OUTBOUND_PROXY, caller id CALLAGENT_SIP_CALLER_ID)."
        ),
    )
    sip_dial_server: str = Field(
        default="",
        validation_alias="CALLAGENT_SIP_DIAL_SERVER",
        description=(
            "Base URL of the server process holding the SIP endpoint, which campaign workers "
            "ask (POST /sip/dial) to place SIP calls; empty = CALLAGENT_PUBLIC_URL, else "
            "http://127.0.0.1:CALLAGENT_PORT."
        ),
    )
