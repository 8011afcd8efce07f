"""Twilio: account, signatures and REST hang-up."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from bot.setting_types import Flag, Secret


class TwilioSettings(BaseSettings):
    """Twilio: account, signatures and REST hang-up."""

    twilio_account_sid: str = Field(
        default="",
        validation_alias="TWILIO_ACCOUNT_SID",
        description="Twilio account SID (AC...).",
    )
    twilio_auth_token: Secret = Field(
        default="",
        validation_alias="TWILIO_AUTH_TOKEN",
        description="Twilio auth token: signs webhooks and hangs calls up.",
    )
    twilio_api_base_url: str = Field(
        default="https://api.twilio.com",
        validation_alias="TWILIO_API_BASE_URL",
        description="Twilio REST API root (a local fake in tests).",
    )
    twilio_validate_signatures: Flag = Field(
        default=True,
        validation_alias="TWILIO_VALIDATE_SIGNATURES",
        description=(
            "Reject Twilio webhooks/streams without a valid X-Twilio-Signature "
            "(needs TWILIO_AUTH_TOKEN)."
        ),
    )
    twilio_insecure_accept_unsigned: Flag = Field(
        default=False,
        validation_alias="CALLAGENT_TWILIO_INSECURE_ACCEPT_UNSIGNED",
        description=(
            "DANGEROUS: serve /twilio/* on a non-loopback CALLAGENT_HOST without signature "
            "checks (no TWILIO_AUTH_TOKEN): anyone can then place calls and forge streams."
        ),
    )
