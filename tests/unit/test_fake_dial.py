"""Issue 17: the fake Twilio REST API places outbound calls to simulated callees.

``POST /Calls.json`` over HTTP as Twilio answers it (auth, errors, JSON), then whole calls
over real sockets: the answer webhook, the status and AMD callbacks (signatures checked
with Twilio's ``RequestValidator`` by a stub agent, :mod:`tests.fakes.outbound_peer`), the
Media Stream opened with the TwiML's parameters, and each kind of callee.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from simulator.outbound.callee import Busy, Failed, NoAnswer, Person, Press, Voicemail
from simulator.outbound.fake_dial import DialedCall
from tests.fakes.outbound_peer import OutboundPeer
from tests.fakes.twilio import FakeTwilioRest

ACCOUNT = "AC" + "3" * 32
TOKEN = "f" * 32
CALLEE = "+15555550142"
AGENT_NUMBER = "+15555550100"
EVENTS = ["initiated", "ringing", "answered", "completed"]


@pytest.fixture
async def rest() -> AsyncIterator[FakeTwilioRest]:
    async with FakeTwilioRest(ACCOUNT, TOKEN) as fake:
        yield fake


@pytest.fixture
async def peer() -> AsyncIterator[OutboundPeer]:
    stub = OutboundPeer(TOKEN)
    await stub.start()
    yield stub
    await stub.stop()


async def create(
    rest: FakeTwilioRest, fields: dict[str, object] | None = None, auth: str = TOKEN
) -> httpx.Response:
    form = {"To": CALLEE, "From": AGENT_NUMBER, "Url": "http://127.0.0.1:9/voice", **(fields or {})}
    url = f"{rest.base_url}/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
    async with httpx.AsyncClient() as client:
        return await client.post(url, data=form, auth=(ACCOUNT, auth))  # type: ignore[arg-type]


async def dial(rest: FakeTwilioRest, peer: OutboundPeer, **fields: object) -> DialedCall:
    response = await create(
        rest,
        {
            "Url": f"{peer.base_url}/voice",
            "StatusCallback": f"{peer.base_url}/status",
            "StatusCallbackEvent": EVENTS,
            **fields,
        },
    )
    assert response.status_code == 201, response.text
    return await rest.dialer.wait_for_end(response.json()["sid"], timeout=30)


async def test_create_answers_201_with_twilios_call_json(rest: FakeTwilioRest) -> None:
    rest.dialer.register(CALLEE, Busy())
    response = await create(rest, {"To": "(555) 555-0142"})
    assert response.status_code == 201
    body = response.json()
    assert re.fullmatch(r"CA[0-9a-f]{32}", body["sid"])
    assert body["status"] == "queued"
    assert body["direction"] == "outbound-api"
    assert (body["to"], body["from"], body["account_sid"]) == (CALLEE, AGENT_NUMBER, ACCOUNT)
    assert body["uri"] == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{body['sid']}.json"
    fetched = await rest.dialer.wait_for_end(body["sid"])
    assert fetched.status == "busy"


async def test_create_refuses_like_twilio(rest: FakeTwilioRest) -> None:
    rest.dialer.register("+15555550199", Failed(code=21216))
    cases = {
        21201: {"To": ""},
        21211: {"To": "not a number"},
        21212: {"From": "nobody"},
        21205: {"Url": ""},
        21626: {"StatusCallbackEvent": "picked-up"},
        21216: {"To": "+15555550199"},
    }
    for code, fields in cases.items():
        response = await create(rest, dict(fields))
        assert response.status_code == 400, code
        body = response.json()
        assert body["code"] == code
        assert body["status"] == 400
        assert body["more_info"].endswith(str(code))
    assert (await create(rest, auth="wrong")).json()["code"] == 20003
    rest.fail_next(429)
    assert (await create(rest)).status_code == 429
    assert rest.dialer.calls == {}  # nothing refused was placed


async def test_twilio_python_client_places_a_call(rest: FakeTwilioRest) -> None:
    from twilio.rest import Client

    rest.dialer.register(CALLEE, Busy())
    client = Client(ACCOUNT, TOKEN)
    client.api.base_url = rest.base_url
    call = await asyncio.to_thread(
        client.calls.create,
        to=CALLEE,
        from_=AGENT_NUMBER,
        url="http://127.0.0.1:9/voice",
        status_callback_event=["initiated", "completed"],
        machine_detection="DetectMessageEnd",
        async_amd="true",
    )
    assert call.sid and call.status == "queued" and call.direction == "outbound-api"
    assert rest.dialer.calls[call.sid].status_events == ("initiated", "completed")


async def test_a_person_answers_keys_digits_and_the_agent_ends_the_call(
    rest: FakeTwilioRest, peer: OutboundPeer
) -> None:
    rest.dialer.register(CALLEE, Person(lines=(Press("1234#"),), hello="", ring_s=0.2))
    call = await dial(rest, peer)
    assert call.error is None
    assert call.status == "completed"
    (answer,) = peer.received("/voice")
    assert answer.signed
    assert answer.form["Direction"] == "outbound-api"
    assert answer.form["CallStatus"] == "in-progress"
    assert answer.form["CallSid"] == call.sid and "AnsweredBy" not in answer.form
    (start,) = peer.starts
    assert start["callSid"] == call.sid
    assert start["customParameters"] == {"CallSid": call.sid, "attempt": "att-1"}
    assert peer.digits == "1234#"
    assert call.log.said == ["press:1234#"] and call.log.hung_up_by == "agent"
    statuses = peer.received("/status")
    assert all(w.signed for w in statuses)
    assert [w.form["CallStatus"] for w in statuses] == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert [w.form["SequenceNumber"] for w in statuses] == ["0", "1", "2", "3"]
    assert int(statuses[-1].form["CallDuration"]) == call.duration_s >= 1
    assert call.events_sent() == ["initiated", "ringing", "in-progress", "completed"]


async def test_a_person_lets_an_opening_spoken_over_their_hello_finish_then_replies(
    rest: FakeTwilioRest, peer: OutboundPeer
) -> None:
    # The agent greets as the stream opens, over the callee's "hello?": that opening is the
    # turn the callee answers (not a later one, which would never come).
    peer.opening_s = 3.0
    person = Person(lines=(Press("#"),), hello="Hello?", ring_s=0.2, reply_timeout_s=120)
    rest.dialer.register(CALLEE, person)
    call = await dial(rest, peer)
    assert call.error is None and call.log.said == ["say:Hello?", "press:#"]
    assert peer.digits == "#"
    assert call.emulator is not None
    opening, reply = call.emulator.bot_utterances()  # the opening, then the reply to '#'
    assert reply[0] > opening[1]  # the key came once the opening was over


class CountingTranscriber:
    """Hears each clip as its length: one text per call to transcribe."""

    def __init__(self) -> None:
        self.clips: list[int] = []

    def transcribe(self, pcm16: bytes, sample_rate: int) -> str:
        self.clips.append(len(pcm16))
        return f"utterance{len(self.clips)}"


async def test_what_the_callee_heard_is_transcribed_one_bot_utterance_at_a_time(
    rest: FakeTwilioRest, peer: OutboundPeer
) -> None:
    transcriber = CountingTranscriber()
    rest.dialer.transcriber = transcriber  # type: ignore[assignment]
    rest.dialer.register(CALLEE, Person(lines=(Press("#"),), hello="", ring_s=0.2))
    call = await dial(rest, peer)
    assert call.emulator is not None and len(call.emulator.bot_utterances()) == 2
    assert call.heard_text == "utterance1 utterance2"  # the opening, the reply to '#'


@pytest.mark.parametrize(
    ("callee", "final", "events"),
    [
        (NoAnswer(), "no-answer", ["initiated", "ringing", "no-answer"]),
        (Busy(), "busy", ["initiated", "busy"]),
        (Failed(code=None), "failed", ["initiated", "failed"]),
    ],
)
async def test_unanswered_calls_end_with_twilios_status(
    rest: FakeTwilioRest, peer: OutboundPeer, callee: object, final: str, events: list[str]
) -> None:
    rest.dialer.register(CALLEE, callee)  # type: ignore[arg-type]
    call = await dial(rest, peer, Timeout="1")
    assert call.status == final
    assert [w.form["CallStatus"] for w in peer.received("/status")] == events
    assert peer.received("/voice") == []
    completed = peer.received("/status")[-1].form
    assert completed["CallDuration"] == "0" and completed["SipResponseCode"]


async def test_a_number_answers_each_call_as_its_registered_sequence_says(
    rest: FakeTwilioRest, peer: OutboundPeer
) -> None:
    rest.dialer.register(CALLEE, Busy(), NoAnswer(), Failed(code=None))  # then failed for good
    finals = [(await dial(rest, peer, Timeout="1")).status for _ in range(4)]
    assert finals == ["busy", "no-answer", "failed", "failed"]


async def test_failing_callbacks_are_recorded_not_retried(
    rest: FakeTwilioRest, peer: OutboundPeer
) -> None:
    peer.status = 500
    rest.dialer.register(CALLEE, Busy())
    call = await dial(rest, peer)
    assert [d.status for d in call.deliveries] == [500, 500]
    assert len(peer.received("/status")) == 2
    refused = await create(rest, {"StatusCallback": "http://127.0.0.1:9/status"})
    gone = await rest.dialer.wait_for_end(refused.json()["sid"])
    assert [d.error for d in gone.deliveries] == ["ConnectError"]


async def test_voicemail_async_amd_then_the_message_after_the_beep(
    rest: FakeTwilioRest, peer: OutboundPeer
) -> None:
    peer.opening = False  # the stub speaks when the AMD callback says the beep ended
    rest.dialer.register(CALLEE, Voicemail(prompt="Please leave a message.", record_s=15))
    call = await dial(
        rest,
        peer,
        MachineDetection="DetectMessageEnd",
        AsyncAmd="true",
        AsyncAmdStatusCallback=f"{peer.base_url}/amd",
    )
    (amd,) = peer.received("/amd")
    assert amd.signed
    assert amd.form["AnsweredBy"] == "machine_end_beep"
    assert int(amd.form["MachineDetectionDuration"]) > 0
    assert "AnsweredBy" not in peer.received("/voice")[0].form  # async: connected at once
    assert call.log.beep_end_s is not None and call.log.beep_end_s > 0
    assert call.log.bot_before_beep_s == 0
    after = call.log.message_after_beep_s
    assert after is not None and after > 0
    assert call.log.hung_up_by == "agent"
    assert peer.received("/status")[-1].form["AnsweredBy"] == "machine_end_beep"


async def test_voicemail_sync_amd_answers_after_the_beep(
    rest: FakeTwilioRest, peer: OutboundPeer
) -> None:
    rest.dialer.register(CALLEE, Voicemail(prompt="Leave a message.", record_s=15))
    call = await dial(rest, peer, MachineDetection="DetectMessageEnd")
    (answer,) = peer.received("/voice")
    assert answer.signed and answer.form["AnsweredBy"] == "machine_end_beep"
    assert call.log.said == []  # the greeting played before the stream opened
    assert call.log.beep_end_s is not None and call.log.beep_end_s <= 0
    after = call.log.message_after_beep_s
    assert after is not None and after > 0
