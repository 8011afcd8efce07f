"""Wires the CRM prefetch, verification, escalation and transfer into each call.

Per call: the CRM prefetch (the runtime's CRM adapter, the caller's identity from the call
spec), caller verification, the callback offer, the escalation processor (the agent's
policy, the runtime's sentiment analyser), the action hold (a hand-off or a goodbye waits
for its line, :mod:`processors.action_hold`) and the transfer processor with the call's
transport's :class:`~processors.transfer.TransferMethod`:

- Twilio: a REST redirect of the live call to TwiML that says the hold line and dials the
  agent's ``transfer.target`` (whisper URL and Dial action URL on this server);
- WebRTC: an RTVI ``handoff`` server message carrying the summary;
- Daily: a SIP REFER of the dial-in caller;
- our SIP trunk: a REFER of the caller to ``transfer.target``; the NOTIFYs about the new
  call say whether a person took it (a failure offers the callback at once, in the call);
- anything else, or no target: no transfer (the bot apologises and offers a callback).

The hand-offs in flight are kept on the runtime's :class:`~bot.call.handoff_desk.HandoffDesk`
(in the shared state: Twilio's callbacks may reach any process of the deployment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.transports.base_transport import BaseTransport

from bot.call.handoff_desk import HandoffDesk, HandoffTicket
from bot.call.runtime import Runtime
from integrations.screen_pop import ScreenPopClient
from integrations.twilio_rest import TwilioCallControl, transfer_twiml
from processors.act_guard import HeardDoubt
from processors.action_hold import ActionHold
from processors.agent_definition import IntentAction
from processors.callback_offer import CallbackOfferProcessor
from processors.caller_verification import CallerVerificationProcessor
from processors.crm_prefetch import CrmPrefetchProcessor
from processors.escalation import EscalationProcessor
from processors.handoff_summary import whisper_text
from processors.transfer import (
    DailySipRefer,
    Handoff,
    NoTransfer,
    SipRefer,
    TransferMethod,
    TransferProcessor,
    TwilioRedirect,
    WebRTCHandoffMessage,
)
from transports.sip.contracts import SipCall
from transports.sip.transport import SipTransport

REFER_MARGIN_S = 10.0
"""A SIP REFER waits for the new call this long beyond the agent's dial timeout."""


@dataclass
class CallHandoffProcessors:
    """The per-call processors, in pipeline order (before and after the dialogue)."""

    crm: CrmPrefetchProcessor
    verification: CallerVerificationProcessor
    callback_offer: CallbackOfferProcessor
    escalation: EscalationProcessor
    hold: ActionHold
    transfer: TransferProcessor

    def before_dialogue(self) -> list[Any]:
        """Between the NLU router and the dialogue."""
        return [self.crm, self.verification, self.callback_offer]

    def after_dialogue(self) -> list[Any]:
        """Between the dialogue (and LLM) and TTS."""
        return [self.escalation, self.hold, self.transfer]


def make_handoff_processors(
    runtime: Runtime,
    *,
    call_id: str,
    transport_kind: str,
    caller: str | None,
    transport: BaseTransport | None,
    context: LLMContext | None,
    provider_call_id: str | None = None,
    public_url: str = "",
) -> CallHandoffProcessors:
    """Build one call's CRM, verification, escalation and transfer processors."""
    agent = runtime.agent
    settings = runtime.settings
    screen_pop = (
        ScreenPopClient(
            settings.screen_pop_url,
            settings.screen_pop_secret,
            timeout_s=settings.screen_pop_timeout_secs,
            attempts=settings.screen_pop_attempts,
        )
        if settings.screen_pop_url
        else None
    )
    method = make_transfer_method(
        runtime,
        transport_kind=transport_kind,
        transport=transport,
        provider_call_id=provider_call_id,
        public_url=public_url,
        call_id=call_id,
    )
    transfer_intents = frozenset(i.name for i in agent.intents if i.action is IntentAction.TRANSFER)
    return CallHandoffProcessors(
        crm=CrmPrefetchProcessor(
            runtime.crm,
            caller,
            call_id=call_id,
            budget_ms=settings.crm_prefetch_budget_ms,
            context=context,
        ),
        verification=CallerVerificationProcessor(agent.verification, call_id=call_id),
        callback_offer=CallbackOfferProcessor(agent.transfer, call_id=call_id),
        escalation=EscalationProcessor(
            agent.escalation,
            handoff_line=agent.transfer.handoff_line,
            transfer_intents=transfer_intents,
            sentiment=runtime.sentiment,
            call_id=call_id,
            doubt=HeardDoubt.with_bar(settings.asr_unsure_confidence),
            transport=transport_kind,
        ),
        # a hand-off or a goodbye waits for its line: the caller going on withdraws it
        hold=ActionHold(),
        transfer=TransferProcessor(
            method,
            agent.transfer,
            call_id=call_id,
            screen_pop=screen_pop,
            playout_remaining=_playout_clock(transport),
        ),
    )


def make_transfer_method(
    runtime: Runtime,
    *,
    transport_kind: str,
    transport: BaseTransport | None,
    provider_call_id: str | None,
    public_url: str,
    call_id: str,
) -> TransferMethod:
    """The transfer strategy for this call's transport."""
    agent = runtime.agent
    settings = runtime.settings
    target = agent.transfer.target
    if transport_kind == "webrtc":
        return WebRTCHandoffMessage()
    if not target:
        return NoTransfer("the agent has no transfer.target")
    if transport_kind == "twilio":
        if not (settings.twilio_account_sid and settings.twilio_auth_token and provider_call_id):
            return NoTransfer("Twilio credentials are not configured")
        control = TwilioCallControl(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            base_url=settings.twilio_api_base_url,
        )
        desk = runtime.handoffs or HandoffDesk(runtime.shared)

        async def twiml_for(handoff: Handoff) -> str:
            caller = handoff.summary.get("caller") or {}
            token = await desk.register(
                HandoffTicket(
                    call_id=call_id,
                    trigger=handoff.trigger,
                    whisper=whisper_text(handoff.summary, agent.name),
                    customer_id=str(caller.get("customer_id") or ""),
                )
            )
            base = public_url.rstrip("/")
            query = urlencode({"h": token})
            return transfer_twiml(
                target,
                hold_line=agent.transfer.hold_line,
                whisper_url=f"{base}/twilio/whisper?{query}" if agent.transfer.whisper else None,
                action_url=f"{base}/twilio/transfer-status?{query}",
                hold_music_url=f"{base}/twilio/hold",
                dial_timeout_s=agent.transfer.dial_timeout_secs,
            )

        return TwilioRedirect(control, provider_call_id, twiml_for)
    if transport_kind == "sip":
        call = _sip_call_of(transport)
        if call is None:
            return NoTransfer("the SIP call is not reachable from its transport")
        timeout_s = agent.transfer.dial_timeout_secs + REFER_MARGIN_S
        return SipRefer(call.refer, target, timeout_s=timeout_s)
    sip_refer = getattr(transport, "sip_refer", None)  # DailyTransport's, when it is one
    if transport_kind == "daily" and sip_refer is not None:
        return DailySipRefer(sip_refer, target)
    return NoTransfer(f"transfers are not supported on {transport_kind}")


def _sip_call_of(transport: BaseTransport | None) -> SipCall | None:
    """The SIP dialog a ``SipTransport`` carries (None: another transport)."""
    return transport.call if isinstance(transport, SipTransport) else None


def _playout_clock(transport: BaseTransport | None) -> Any:
    """Seconds of speech still to play at the phone (Twilio, SIP), else None."""
    call = _sip_call_of(transport)
    if call is not None:  # queued, not yet sent: what is sent is heard 20 ms later
        return lambda: call.media.queued_s
    params = getattr(transport, "_params", None)
    serializer = getattr(params, "serializer", None)
    return getattr(serializer, "speech_playout_remaining_s", None)
