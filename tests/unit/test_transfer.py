"""The transfer processor: hold music, screen pop first, the transfer, and failure handling."""

import json
import xml.etree.ElementTree as ET

import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    OutputAudioRawFrame,
    TTSSpeakFrame,
)
from pipecat.processors.frameworks.rtvi import RTVIServerMessageFrame
from pipecat.tests.utils import SleepFrame, run_test

from integrations.screen_pop import ScreenPopClient, verify_signature
from integrations.twilio_rest import TwilioCallControl, TwilioRestError, say_twiml, transfer_twiml
from processors.frames import EscalationFrame, TransferResultFrame
from processors.transfer import (
    DailySipRefer,
    NoTransfer,
    TransferMethod,
    TransferOutcome,
    TransferProcessor,
    TwilioRedirect,
    WebRTCHandoffMessage,
)
from tests.fakes.agent_desktop import WebhookReceiver
from tests.fakes.twilio import FakeTwilioRest

SUMMARY = {"reason": "explicit_request", "caller": {"name": "Maria Garcia"}}


class Recording(TransferMethod):
    name = "recording"

    def __init__(self, ok=True, events=None):
        self.ok = ok
        self.events = events if events is not None else []

    async def transfer(self, handoff, push):
        self.events.append(("transfer", handoff.trigger))
        return TransferOutcome(self.ok, "" if self.ok else "line busy")


def escalation():
    return EscalationFrame(trigger="explicit_request", reason="asked", summary=SUMMARY)


def line_spoken(seconds=0.05):
    return [
        SleepFrame(0.02),
        BotStartedSpeakingFrame(),
        SleepFrame(seconds),
        BotStoppedSpeakingFrame(),
    ]


def results(frames):
    return [f for f in frames if isinstance(f, TransferResultFrame)]


async def test_success_after_the_line_with_hold_music(agent):
    method = Recording()
    transfer = TransferProcessor(method, agent.transfer, call_id="t1")
    down, up = await run_test(
        transfer, frames_to_send=[escalation(), *line_spoken(), SleepFrame(1.0)]
    )
    assert method.events == [("transfer", "explicit_request")]
    result = results(down)[0]
    assert result.ok and result.transfer_result == "transferred" and result.method == "recording"
    assert result.trigger_to_request_ms > 0
    assert results(up)[0].ok  # upstream too, for the escalation, callback offer and CRM
    assert not [f for f in down if isinstance(f, TTSSpeakFrame)]


async def test_failure_says_so_offers_a_callback_and_is_recorded(agent):
    transfer = TransferProcessor(Recording(ok=False), agent.transfer, call_id="t1")
    down, up = await run_test(
        transfer, frames_to_send=[escalation(), *line_spoken(), SleepFrame(0.9)]
    )
    result = results(down)[0]
    assert not result.ok and result.error == "line busy"
    assert result.transfer_result == "failed: line busy"
    said = [f.text for f in down if isinstance(f, TTSSpeakFrame)]
    assert said == [f"{agent.transfer.failure_line} {agent.transfer.callback_offer}"]


async def test_bot_lines_are_silenced_while_transferring(agent):
    transfer = TransferProcessor(Recording(), agent.transfer, call_id="t1")
    down, _ = await run_test(
        transfer,
        frames_to_send=[
            escalation(),
            TTSSpeakFrame("Are you still there?"),
            *line_spoken(),
            SleepFrame(0.9),
        ],
    )
    assert not [f for f in down if isinstance(f, TTSSpeakFrame)]


async def test_screen_pop_is_delivered_first_and_signed(agent):
    events: list = []
    async with WebhookReceiver(statuses=[503]) as desk:
        pop = ScreenPopClient(desk.url, "s3", backoff_s=0.01)
        transfer = TransferProcessor(
            Recording(events=events), agent.transfer, call_id="t1", screen_pop=pop
        )
        down, _ = await run_test(
            transfer, frames_to_send=[escalation(), *line_spoken(), SleepFrame(1.0)]
        )
    assert len(desk.received) == 2 and events  # retried, then the transfer
    body = desk.received[-1]
    assert verify_signature("s3", body.body, body.headers["X-Callagent-Signature"])
    assert body.json["summary"] == SUMMARY
    assert desk.received[0].headers["Idempotency-Key"] == body.headers["Idempotency-Key"]
    assert results(down)[0].screen_pop_delivered is True


async def test_waits_for_the_line_to_play_out_at_the_phone(agent):
    remaining = {"s": 0.5}
    method = Recording()
    transfer = TransferProcessor(
        method, agent.transfer, call_id="t1", playout_remaining=lambda: remaining["s"]
    )
    down, _ = await run_test(
        transfer, frames_to_send=[escalation(), *line_spoken(), SleepFrame(1.5)]
    )
    assert results(down)[0].trigger_to_request_ms >= 500
    hold = [f for f in down if isinstance(f, OutputAudioRawFrame)]
    assert sum(len(f.audio) for f in hold) / 2 / hold[0].sample_rate >= 0.4  # never silence


async def test_webrtc_handoff_message_and_hold(agent):
    transfer = TransferProcessor(WebRTCHandoffMessage(), agent.transfer, call_id="t1")
    down, _ = await run_test(
        transfer, frames_to_send=[escalation(), *line_spoken(), SleepFrame(1.0)]
    )
    message = next(f for f in down if isinstance(f, RTVIServerMessageFrame))
    assert message.data == {"type": "handoff", "summary": SUMMARY}
    assert results(down)[0].ok and results(down)[0].method == "webrtc_handoff"


async def test_daily_sip_refer_and_no_transfer():
    referred = []

    async def refer(settings):
        referred.append(settings)
        return None

    outcome = await DailySipRefer(refer, "sip:desk@pbx.example.com").transfer(None, None)
    assert outcome.ok and referred == [{"toEndPoint": "sip:desk@pbx.example.com"}]

    async def refuse(settings):
        return "error"

    assert not (await DailySipRefer(refuse, "+15555550100").transfer(None, None)).ok
    assert not (await NoTransfer("no target").transfer(None, None)).ok


async def test_twilio_redirect_through_the_rest_api():
    async with FakeTwilioRest("AC" + "1" * 32, "tok") as rest:
        control = TwilioCallControl("AC" + "1" * 32, "tok", base_url=rest.base_url)
        twiml = transfer_twiml(
            "+15555550100",
            hold_line="Please hold.",
            whisper_url="https://x/twilio/whisper?h=t",
            action_url="https://x/twilio/transfer-status?h=t",
            hold_music_url=None,
        )

        async def twiml_for(_handoff):
            return twiml

        method = TwilioRedirect(control, "CA" + "2" * 32, twiml_for)
        outcome = await method.transfer(None, None)
        assert outcome.ok
        call = rest.calls["CA" + "2" * 32]
        root = ET.fromstring(call.twiml[0])
        number = root.find("Dial/Number")
        assert number.text == "+15555550100" and "whisper" in number.get("url")
        assert root.find("Say").text == "Please hold."
        bad = TwilioRedirect(
            TwilioCallControl("AC" + "1" * 32, "wrong", base_url=rest.base_url),
            "CA" + "2" * 32,
            twiml_for,
        )
        outcome = await bad.transfer(None, None)
        assert not outcome.ok and "401" in outcome.error


async def test_twilio_redirect_retries_a_failing_api_but_not_a_refusal():
    call_sid = "CA" + "3" * 32
    async with FakeTwilioRest("AC" + "1" * 32, "tok") as rest:
        control = TwilioCallControl("AC" + "1" * 32, "tok", base_url=rest.base_url)
        rest.fail_next(503)
        rest.fail_next(429)
        assert await control.redirect(call_sid, say_twiml("Hold on.")) == "in-progress"
        assert [r.status for r in rest.requests] == [503, 429, 200]
        assert len(rest.calls[call_sid].twiml) == 1
        rest.requests.clear()
        refused = TwilioCallControl("AC" + "1" * 32, "wrong", base_url=rest.base_url)
        with pytest.raises(TwilioRestError) as raised:
            await refused.redirect(call_sid, say_twiml("Hold on."))
        assert raised.value.status == 401 and not raised.value.retryable
        assert [r.status for r in rest.requests] == [401]
        rest.fail_next(503, times=3)
        with pytest.raises(TwilioRestError) as raised:
            await control.redirect(call_sid, say_twiml("Hold on."))
        assert raised.value.status == 503 and raised.value.retryable


def test_queue_and_sip_targets():
    queue = ET.fromstring(
        transfer_twiml(
            "queue:front-desk",
            hold_line="Hold",
            whisper_url=None,
            action_url="https://x/a",
            hold_music_url="https://x/twilio/hold",
        )
    )
    assert queue.find("Enqueue").text == "front-desk"
    assert queue.find("Enqueue").get("waitUrl") == "https://x/twilio/hold"
    sip = ET.fromstring(
        transfer_twiml(
            "sip:desk@pbx.example.com",
            hold_line="",
            whisper_url=None,
            action_url=None,
            hold_music_url=None,
        )
    )
    assert sip.find("Dial/Sip").text == "sip:desk@pbx.example.com"
    json.dumps(SUMMARY)
