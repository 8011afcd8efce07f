"""The outbound leg's parts for one server, built from settings (``bot/web/app.py`` holds it).

``app.state.outbound`` is the :class:`Outbound`: register an
:class:`~bot.outbound.listeners.AttemptListener` with ``outbound.listeners.add(...)`` to hear
every attempt that ends (campaign retries), and find running outbound calls in
``outbound.live`` (the runtime's :class:`~bot.call.live_calls.LiveCalls`).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.call.live_calls import LiveCalls
from bot.call.records import CallRecords
from bot.call.runtime import Runtime
from bot.call.transport import CallTransport
from bot.outbound.agents import find_agent
from bot.outbound.attempts import Attempts
from bot.outbound.dialer import Dialer, TwilioDialer, TwilioDialPlan
from bot.outbound.in_call import OutboundCalls, outbound_spec
from bot.outbound.listeners import AttemptListeners
from bot.outbound.placer import CallPlacer
from bot.outbound.ring import BrowserDialer, RingError, Rings, RingTokens
from bot.outbound.sip_leg import LocalSipDialer, SipOutboundLeg
from bot.outbound.sip_plan import sip_dial_plan
from bot.outbound.tokens import AttemptTokens
from bot.outbound.twilio_leg import TwilioOutboundLeg
from bot.settings import Settings
from integrations.outbound.store import OutboundStore
from integrations.twilio_rest import TwilioCallControl


@dataclass
class Outbound:
    """Everything the outbound routes and calls share (see the module)."""

    attempts: Attempts
    listeners: AttemptListeners
    live: LiveCalls
    rings: Rings
    placer: CallPlacer
    twilio: TwilioOutboundLeg
    calls: OutboundCalls
    sip: SipOutboundLeg

    async def close(self) -> None:
        """Stop the browser rings' timers and the SIP INVITEs in flight."""
        await self.rings.close()
        await self.sip.close()

    async def ring_answered(self, call: CallTransport, ring: str) -> CallTransport | None:
        """A browser call answering a ring, as its attempt's outbound call (None: refused)."""
        try:
            attempt = await self.attempts.get(await self.rings.attempt_of(ring))
        except RingError:
            return None
        if attempt is None or attempt.ended:
            return None
        return CallTransport(call.transport, outbound_spec(call.spec, attempt))


def twilio_dial_problem(settings: Settings) -> str | None:
    """Why Twilio calls cannot be placed with these settings (None: they can)."""
    missing = [
        name
        for name, value in (
            ("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
            ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
            ("CALLAGENT_OUTBOUND_FROM_NUMBER", settings.outbound_from_number),
        )
        if not value
    ]
    if missing:
        return f"outbound Twilio calls need {', '.join(missing)} (set them in .env)"
    return None


def attempt_tokens(settings: Settings) -> AttemptTokens:
    """The signer of attempt tokens: the same on the server and every campaign worker."""
    return AttemptTokens(settings.twilio_auth_token or settings.operator_token)


def make_twilio_dialer(settings: Settings, tokens: AttemptTokens | None = None) -> TwilioDialer:
    """Twilio's ``calls.create`` with the settings' account, caller id and machine detection."""
    rest = TwilioCallControl(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        base_url=settings.twilio_api_base_url,
    )
    plan = TwilioDialPlan(
        settings.outbound_from_number,
        settings.outbound_ring_secs,
        settings.outbound_machine_detection,
    )
    return TwilioDialer(rest, tokens or attempt_tokens(settings), plan)


def build_outbound(settings: Settings, runtime: Runtime, records: CallRecords) -> Outbound:
    """The outbound parts on the call-record database of ``records``."""
    tokens = attempt_tokens(settings)
    secret = settings.twilio_auth_token or settings.operator_token
    listeners = AttemptListeners()
    attempts = Attempts(OutboundStore(records.store.engine), listeners, records.store)
    live = runtime.live
    rings = Rings(
        RingTokens(
            settings.operator_token or secret,
            runtime.shared,
            ttl_s=settings.outbound_ring_secs + 5,
        ),
        attempts,
        settings.outbound_ring_secs,
        runtime.shared,
    )

    def agent_name(key: str) -> str:
        agent = find_agent(runtime, key)
        return agent.name if agent is not None else key

    sip = SipOutboundLeg(tokens, attempts, sip_dial_plan(settings), runtime.inbox)
    dialers: dict[str, Dialer] = {
        "browser": BrowserDialer(rings, agent_name),
        "sip": LocalSipDialer(sip),
    }
    if twilio_dial_problem(settings) is None:
        dialers["twilio"] = make_twilio_dialer(settings, tokens)
    return Outbound(
        attempts=attempts,
        listeners=listeners,
        live=live,
        rings=rings,
        placer=CallPlacer(attempts, dialers),
        twilio=TwilioOutboundLeg(tokens, attempts, live, runtime.inbox),
        calls=OutboundCalls(attempts, records.store),
        sip=sip,
    )
