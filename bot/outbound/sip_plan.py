"""Outbound SIP calls from settings: the INVITE's plan, the dial server, what is missing."""

from __future__ import annotations

from bot.outbound.sip_dialer import SipDialer
from bot.outbound.sip_leg import SipDialPlan
from bot.outbound.tokens import AttemptTokens
from bot.settings import Settings


def sip_dial_problem(settings: Settings) -> str | None:
    """Why this server cannot place SIP calls, naming what to set (None: it can)."""
    missing = [
        name
        for name, value in (
            ("CALLAGENT_SIP_LISTEN", settings.sip_listen),
            ("CALLAGENT_SIP_CALLER_ID", settings.sip_caller_id),
            ("CALLAGENT_SIP_OUTBOUND_PROXY", settings.sip_outbound_proxy or settings.sip_registrar),
        )
        if not value
    ]
    if missing:
        return f"outbound SIP calls need {', '.join(missing)} (set them in .env)"
    return None


def sip_dial_plan(settings: Settings) -> SipDialPlan | None:
    """The INVITE's caller id and destination (None: :func:`sip_dial_problem` says why)."""
    if sip_dial_problem(settings) is not None:
        return None
    domain = settings.sip_outbound_proxy or settings.sip_registrar
    for prefix in ("sips:", "sip:"):
        domain = domain.removeprefix(prefix)
    return SipDialPlan(
        caller_id=settings.sip_caller_id,
        domain=domain.split(";", 1)[0].rsplit("@", 1)[-1],
        local_host=settings.sip_advertised_host,
        ring_secs=float(settings.outbound_ring_secs),
    )


def sip_dial_server(settings: Settings) -> str:
    """The server a campaign worker asks to place SIP calls (see ``CALLAGENT_SIP_DIAL_SERVER``)."""
    return (
        settings.sip_dial_server or settings.public_url or f"http://127.0.0.1:{settings.port}"
    ).rstrip("/")


def campaign_sip_problem(settings: Settings) -> str | None:
    """Why a campaign worker cannot dial over SIP (None: it can).

    The worker and the server must sign and verify attempt tokens with the same secret.
    """
    if not (settings.operator_token or settings.twilio_auth_token):
        return (
            "campaigns over SIP need CALLAGENT_OPERATOR_TOKEN (the secret the worker's dial "
            "requests are signed with; the same on the server and every worker)"
        )
    return None


def make_sip_dialer(settings: Settings, tokens: AttemptTokens) -> SipDialer:
    """The campaign's SIP dialer: asks the dial server for each INVITE."""
    return SipDialer(tokens, sip_dial_server(settings))
