"""Twilio Media Streams: TwiML, signatures, the stream handshake, the hardened serializer,
the fake REST API and the phone emulator (against a tiny local stream server)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import warnings
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from loguru import logger
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    CancelWorkerFrame,
    EndFrame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
)
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketTransport
from websockets.asyncio.server import ServerConnection, serve

from integrations.speech.audio import mulaw_decode, mulaw_encode
from simulator.audio_codec import rms
from simulator.phone import TwilioCallEmulator, new_sid, parse_stream_twiml
from tests.fakes.twilio import FakeSocket, FakeTwilioRest
from transports import twilio
from transports.input_batching import LoadAdaptiveBatching, NoBatching

SECRET = "SECRET-CALLER-4242"
TOKEN = "0123456789abcdef0123456789abcdef"
ACCOUNT = "AC" + "a" * 32
CALL = "CA" + "b" * 32
STREAM = "MZ" + "c" * 32


@pytest.fixture
def logs():
    """Everything loguru logs during the test, formatted with extras."""
    lines: list[str] = []
    handler = logger.add(lambda m: lines.append(str(m)), level="TRACE", format="{message} {extra}")
    yield lines
    logger.remove(handler)


def tone(seconds: float, freq: float = 440.0, amplitude: int = 8000, rate: int = 8000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


# TwiML and signatures


def test_twiml_connects_the_stream_with_escaped_parameters():
    xml = twilio.build_stream_twiml(
        "wss://agent.example.com/twilio/stream?a=1&b=2",
        {"From": "+1555<0123>", "Note": 'say "hi" & bye'},
    )
    root = ET.fromstring(xml)
    assert root.tag == "Response"
    stream = root.find("./Connect/Stream")
    assert stream is not None
    assert stream.get("url") == "wss://agent.example.com/twilio/stream?a=1&b=2"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"From": "+1555<0123>", "Note": 'say "hi" & bye'}
    assert parse_stream_twiml(xml).parameters == params


def test_webhook_signature_valid_and_invalid():
    url = "https://agent.example.com/twilio/voice?x=1"
    form = {"CallSid": CALL, "From": "+15555550123", "To": "+15555550100"}
    signature = twilio.compute_signature(TOKEN, url, form)
    assert twilio.validate_webhook_signature(TOKEN, url, form, signature)
    assert not twilio.validate_webhook_signature(TOKEN, url, {**form, "From": "+1999"}, signature)
    assert not twilio.validate_webhook_signature(TOKEN, url.replace("x=1", "x=2"), form, signature)
    assert not twilio.validate_webhook_signature("other-token", url, form, signature)
    assert not twilio.validate_webhook_signature(TOKEN, url, form, "")
    assert not twilio.validate_webhook_signature("", url, form, signature)


def test_stream_signature_is_over_the_public_url_behind_a_proxy():
    public = twilio.public_request_url(
        "https://agent.example.com/", "/twilio/stream", websocket=True
    )
    assert public == "wss://agent.example.com/twilio/stream"
    signature = twilio.compute_signature(TOKEN, public, {})
    assert twilio.validate_stream_signature(TOKEN, public, signature)
    internal = "ws://10.0.0.5:7860/twilio/stream"
    assert not twilio.validate_stream_signature(TOKEN, internal, signature)
    assert not twilio.validate_stream_signature(TOKEN, public, signature[:-2] + "xx")
    assert (
        twilio.public_request_url("https://h.example.com", "/twilio/voice", "a=1")
        == "https://h.example.com/twilio/voice?a=1"
    )


# Stream handshake


def start_message(**media_format: object) -> dict:
    fmt = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1, **media_format}
    return {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": STREAM,
        "start": {
            "accountSid": ACCOUNT,
            "streamSid": STREAM,
            "callSid": CALL,
            "tracks": ["inbound"],
            "customParameters": {"From": "+15555550123", "To": "+15555550100"},
            "mediaFormat": fmt,
        },
    }


CONNECTED = {"event": "connected", "protocol": "Call", "version": "1.0.0"}


async def test_read_stream_start_good():
    start = await twilio.read_stream_start(FakeSocket(CONNECTED, start_message()), timeout_s=2)
    assert (start.stream_sid, start.call_sid, start.account_sid) == (STREAM, CALL, ACCOUNT)
    assert start.custom_parameters == {"From": "+15555550123", "To": "+15555550100"}
    assert start.media_format == twilio.MediaFormat("audio/x-mulaw", 8000, 1)
    assert "+1555" not in repr(start)


@pytest.mark.parametrize(
    "fmt",
    [{"encoding": "audio/x-l16"}, {"sampleRate": 16000}, {"channels": 2}, {"sampleRate": "x"}],
)
async def test_read_stream_start_rejects_wrong_media_format(fmt):
    with pytest.raises(twilio.StreamStartError, match="audio/x-mulaw|numbers"):
        await twilio.read_stream_start(FakeSocket(CONNECTED, start_message(**fmt)), timeout_s=2)


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ((CONNECTED, f"{{not json {SECRET}"), "malformed JSON"),
        ((CONNECTED, {"event": "media", "media": {"payload": SECRET}}), "expected a 'start'"),
        ((CONNECTED, {"event": SECRET}), "invalid event"),
        ((CONNECTED,), "closed before"),
        (
            (
                CONNECTED,
                {**start_message(), "start": {**start_message()["start"], "callSid": "../x"}},
            ),
            "callSid",
        ),
        ((CONNECTED, "x" * (twilio.MAX_MESSAGE_BYTES + 1)), "oversized"),
    ],
)
async def test_read_stream_start_errors_are_clear_and_carry_no_content(messages, match):
    with pytest.raises(twilio.StreamStartError, match=match) as err:
        await twilio.read_stream_start(FakeSocket(*messages), timeout_s=2)
    assert SECRET not in str(err.value)


async def test_read_stream_start_times_out():
    with pytest.raises(twilio.StreamStartError, match="within"):
        await twilio.read_stream_start(FakeSocket(CONNECTED, hang=True), timeout_s=0.2)


# Hardened serializer


async def make_serializer(**kwargs: object) -> twilio.HardenedTwilioSerializer:
    params = TwilioFrameSerializer.InputParams(auto_hang_up=False)
    s = twilio.HardenedTwilioSerializer(STREAM, CALL, ACCOUNT, TOKEN, params=params, **kwargs)
    await s.setup(SimpleNamespace(audio_in_sample_rate=8000))  # type: ignore[arg-type]
    return s


def media(payload: str, **extra: object) -> str:
    return json.dumps(
        {"event": "media", "streamSid": STREAM, "media": {"payload": payload, **extra}}
    )


@pytest.mark.parametrize(
    "message",
    [
        f'{{"event": "media", "media": {{"payload": "{SECRET}"',  # truncated JSON
        f'["{SECRET}"]',  # not an object
        json.dumps({"event": SECRET, "data": SECRET}),  # unknown event, odd name
        json.dumps({"event": "transcript", "text": SECRET}),  # unknown event
        media(SECRET + "!!"),  # bad base64
        media(base64.b64encode(b"\xff" * 9000).decode()),  # payload too large
        media(""),  # empty payload
        media(base64.b64encode(SECRET.encode()).decode(), track="outbound"),
        json.dumps({"event": "media", "media": SECRET}),
        json.dumps({"event": "dtmf", "dtmf": {"digit": SECRET}}),
        json.dumps({"event": "dtmf", "dtmf": {"digit": ["1"]}}),
        json.dumps({"event": "dtmf"}),
        json.dumps({"event": "media", "pad": SECRET * 5000}),  # oversized message
        SECRET.encode() + b"\xff\xfe",  # binary garbage
    ],
)
async def test_bad_messages_are_dropped_without_logging_content(message, logs):
    s = await make_serializer()
    assert await s.deserialize(message) is None
    assert sum(s.drops.values()) == 1
    text = "\n".join(logs)
    assert CALL in text
    assert SECRET not in text
    assert "+1555" not in text


async def test_media_becomes_8khz_input_audio(logs):
    s = await make_serializer()
    pcm = tone(0.02)
    frame = await s.deserialize(
        media(base64.b64encode(mulaw_encode(pcm)).decode(), track="inbound")
    )
    assert isinstance(frame, InputAudioRawFrame)
    assert frame.sample_rate == 8000 and frame.num_channels == 1
    assert len(frame.audio) == 320
    assert np.corrcoef(np.frombuffer(frame.audio, "<i2"), np.frombuffer(pcm, "<i2"))[0, 1] > 0.99
    assert not s.drops and not logs


async def test_busy_server_joins_two_chunks_per_frame_and_loses_none():
    calls = [1]
    s = await make_serializer(batching=LoadAdaptiveBatching(lambda: calls[0], busy_from=4))
    chunks = [tone(0.02, freq=300 + 100 * i) for i in range(6)]
    wire = [media(base64.b64encode(mulaw_encode(c)).decode()) for c in chunks]

    quiet = [await s.deserialize(m) for m in wire[:2]]  # one call: every chunk is a frame
    assert [len(f.audio) for f in quiet if isinstance(f, InputAudioRawFrame)] == [320, 320]

    calls[0] = 4  # busy: two chunks per frame
    busy = [await s.deserialize(m) for m in wire[2:]]
    assert busy[0] is None and busy[2] is None
    joined = b"".join(f.audio for f in busy if isinstance(f, InputAudioRawFrame))
    assert len(joined) == 4 * 320  # nothing dropped, in order
    expected = np.frombuffer(b"".join(chunks[2:]), "<i2")
    assert np.corrcoef(np.frombuffer(joined, "<i2"), expected)[0, 1] > 0.99
    assert not s.drops

    calls[0] = 20  # very busy (from 12): three chunks per frame
    s = await make_serializer(
        batching=LoadAdaptiveBatching(lambda: calls[0], busy_from=4, very_busy_from=12)
    )
    frames = [await s.deserialize(m) for m in wire]
    assert [f is None for f in frames] == [True, True, False, True, True, False]
    joined = b"".join(f.audio for f in frames if isinstance(f, InputAudioRawFrame))
    assert joined == b"".join(f.audio for f in quiet + busy if isinstance(f, InputAudioRawFrame))


def test_batching_policies():
    assert NoBatching().chunks_per_frame() == 1
    active = [3]
    policy = LoadAdaptiveBatching(lambda: active[0], busy_from=4)
    assert policy.chunks_per_frame() == 1
    active[0] = 9
    assert policy.chunks_per_frame() == 2
    stepped = LoadAdaptiveBatching(lambda: active[0], busy_from=4, very_busy_from=12)
    assert stepped.chunks_per_frame() == 2
    active[0] = 12
    assert stepped.chunks_per_frame() == 3
    only_60ms = LoadAdaptiveBatching(lambda: active[0], busy_from=0, very_busy_from=10)
    assert only_60ms.chunks_per_frame() == 2  # one threshold reached: one step up


async def test_dtmf_marks_and_stop(logs):
    s = await make_serializer()
    frame = await s.deserialize(
        json.dumps({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": "5"}})
    )
    assert isinstance(frame, InputDTMFFrame) and frame.button == KeypadEntry.FIVE
    assert await s.deserialize(json.dumps({"event": "mark", "mark": {"name": "m1"}})) is None
    assert s.marks_received == 1
    assert await s.deserialize(json.dumps(CONNECTED)) is None
    stop = {"event": "stop", "streamSid": STREAM, "stop": {"accountSid": ACCOUNT, "callSid": CALL}}
    assert await s.deserialize(json.dumps(stop)) is None  # Twilio closes the socket next
    # a peer that keeps talking after 'stop' gets the call cancelled, once
    assert isinstance(await s.deserialize(media("//8=")), CancelWorkerFrame)
    assert await s.deserialize(media("//8=")) is None
    assert s.stopped and not s.drops
    assert "5" not in "".join(line for line in logs if "dtmf" in line.lower())


async def test_interruption_sends_clear():
    s = await make_serializer()
    assert json.loads(await s.serialize(InterruptionFrame())) == {
        "event": "clear",
        "streamSid": STREAM,
    }


async def test_end_frame_hangs_up_over_rest_after_the_last_words_played():
    async with FakeTwilioRest(ACCOUNT, TOKEN) as rest:
        s = twilio.HardenedTwilioSerializer(STREAM, CALL, ACCOUNT, TOKEN, base_url=rest.base_url)
        await s.setup(SimpleNamespace(audio_in_sample_rate=8000))  # type: ignore[arg-type]
        sent = await s.serialize(OutputAudioRawFrame(tone(0.6), 8000, 1))
        assert json.loads(sent)["event"] == "media"
        played_until = time.monotonic() + 0.55
        await s.serialize(EndFrame())
        assert time.monotonic() >= played_until
        hang_up = rest.hang_ups(CALL)
        assert len(hang_up) == 1 and hang_up[0].form == {"Status": "completed"}
        await s.serialize(EndFrame())
        assert len(rest.hang_ups()) == 1


async def test_no_rest_hang_up_once_twilio_stopped_the_stream():
    async with FakeTwilioRest(ACCOUNT, TOKEN) as rest:
        s = twilio.HardenedTwilioSerializer(STREAM, CALL, ACCOUNT, TOKEN, base_url=rest.base_url)
        await s.setup(SimpleNamespace(audio_in_sample_rate=8000))  # type: ignore[arg-type]
        await s.deserialize(json.dumps({"event": "stop", "stop": {"callSid": CALL}}))
        await s.serialize(EndFrame())
        assert rest.requests == []


def test_transport_is_built_for_twilio():
    start = twilio.TwilioStreamStart(STREAM, CALL, ACCOUNT)
    transport = twilio.create_twilio_transport(
        SimpleNamespace(headers={}),  # type: ignore[arg-type]
        start,
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        rest_base_url="http://127.0.0.1:9",
        hang_up=True,
    )
    assert isinstance(transport, FastAPIWebsocketTransport)
    params = transport._params
    assert params.audio_in_enabled and params.audio_out_enabled and not params.add_wav_header
    assert isinstance(params.serializer, twilio.HardenedTwilioSerializer)
    assert params.session_timeout and params.allowed_origins == []
    with pytest.raises(ValueError, match="auth token"):
        twilio.create_twilio_transport(
            SimpleNamespace(headers={}),  # type: ignore[arg-type]
            start,
            account_sid=ACCOUNT,
            auth_token="",
            rest_base_url=None,
            hang_up=True,
        )


# μ-law codec


def test_ulaw_codec_matches_the_g711_reference():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    pcm = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert mulaw_encode(pcm) == audioop.lin2ulaw(pcm, 2)
    codes = bytes(range(256))
    assert mulaw_decode(codes) == audioop.ulaw2lin(codes, 2)
    assert mulaw_encode(b"\x00\x00") == b"\xff"


def test_ulaw_known_bytes_and_round_trip():
    def samples(*values: int) -> bytes:
        return np.array(values, dtype="<i2").tobytes()

    # G.711 table values: silence, the loudest positive and negative codes, one step up.
    assert mulaw_encode(samples(0, 32767, -32768, 8)) == b"\xff\x80\x00\xfe"
    assert mulaw_decode(b"\xff\x7f\x80\x00\xfe") == samples(0, 0, 32124, -32124, 8)
    assert mulaw_encode(samples(1000) + b"\x01") == mulaw_encode(samples(1000))  # odd byte
    # Every code decodes to a value that encodes back to it (0x7f is "-0", i.e. silence).
    codes = bytes(c for c in range(256) if c != 0x7F)
    assert mulaw_encode(mulaw_decode(codes)) == codes
    assert mulaw_encode(mulaw_decode(b"\x7f")) == b"\xff"


# Fake REST API


async def test_fake_rest_checks_auth_and_answers_like_twilio():
    async with FakeTwilioRest(ACCOUNT, TOKEN, known_calls={CALL}) as rest:
        url = f"{rest.base_url}/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL}.json"
        async with httpx.AsyncClient() as client:
            bad = await client.post(url, data={"Status": "completed"}, auth=(ACCOUNT, "wrong"))
            assert bad.status_code == 401 and bad.json()["code"] == 20003
            other = url.replace(CALL, "CA" + "0" * 32)
            missing = await client.post(other, data={"Status": "completed"}, auth=(ACCOUNT, TOKEN))
            assert missing.status_code == 404 and missing.json()["code"] == 20404
            twiml = await client.post(url, data={"Twiml": "<Response/>"}, auth=(ACCOUNT, TOKEN))
            assert twiml.status_code == 200 and twiml.json()["status"] == "in-progress"
            ok = await client.post(url, data={"Status": "completed"}, auth=(ACCOUNT, TOKEN))
            assert ok.status_code == 200
            assert ok.json()["sid"] == CALL and ok.json()["status"] == "completed"
        assert (await rest.wait_for_hang_up(CALL, timeout=1)).form == {"Status": "completed"}
        assert rest.calls[CALL].twiml == ["<Response/>"]
        assert [r.status for r in rest.requests] == [401, 404, 200, 200]


# Phone emulator against a tiny stream server


class ParrotBot:
    """A minimal Media Streams peer: repeats each caller utterance back after a pause.

    DTMF ``1`` plays a 2 s tone then a mark; ``2`` sends ``clear``; ``3`` plays a 4 s tone
    that is cleared as soon as the caller speaks; ``9`` closes the stream.
    """

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.mark_echoes: list[tuple[str, float]] = []
        self.sent_marks: dict[str, float] = {}
        self.closed = asyncio.Event()
        self.port = 0
        self._barge_in_armed = False

    async def handler(self, ws: ServerConnection) -> None:
        heard = bytearray()
        quiet = 0
        try:
            async for raw in ws:
                msg = json.loads(raw)
                self.messages.append(msg)
                event = msg["event"]
                if event == "media":
                    pcm = mulaw_decode(base64.b64decode(msg["media"]["payload"]))
                    loud = rms(pcm) > 300
                    if loud and self._barge_in_armed:
                        self._barge_in_armed = False
                        await ws.send(json.dumps({"event": "clear", "streamSid": msg["streamSid"]}))
                    if loud or heard:
                        heard += pcm
                    quiet = 0 if loud else quiet + 1
                    if heard and quiet >= 10:  # 200 ms of silence ends the utterance
                        await self.play(ws, bytes(heard[: -quiet * 320]), "reply")
                        heard.clear()
                elif event == "dtmf":
                    digit = msg["dtmf"]["digit"]
                    if digit == "1":
                        await self.play(ws, tone(2.0), "tone")
                    elif digit == "2":
                        await ws.send(json.dumps({"event": "clear", "streamSid": STREAM}))
                    elif digit == "3":
                        await self.play(ws, tone(4.0), "long")
                        self._barge_in_armed = True
                    elif digit == "9":
                        await ws.close()
                elif event == "mark":
                    self.mark_echoes.append((msg["mark"]["name"], time.monotonic()))
        finally:
            self.closed.set()

    async def play(self, ws: ServerConnection, pcm: bytes, mark: str) -> None:
        ulaw = mulaw_encode(pcm)
        for i in range(0, len(ulaw), 320):  # 40 ms messages, sent at once (faster than real time)
            payload = base64.b64encode(ulaw[i : i + 320]).decode()
            await ws.send(
                json.dumps({"event": "media", "streamSid": STREAM, "media": {"payload": payload}})
            )
        self.sent_marks[mark] = time.monotonic()
        await ws.send(json.dumps({"event": "mark", "streamSid": STREAM, "mark": {"name": mark}}))


@pytest.fixture
async def parrot():
    bot = ParrotBot()
    async with serve(bot.handler, "127.0.0.1", 0) as server:
        bot.port = server.sockets[0].getsockname()[1]
        yield bot


def voice_like(seconds: float = 0.8) -> bytes:
    return tone(0.1, amplitude=0) + tone(seconds, freq=220) + tone(0.3, amplitude=0)


async def test_emulator_speaks_twilios_protocol(parrot):
    call = TwilioCallEmulator(f"ws://127.0.0.1:{parrot.port}", from_number="+15555550999")
    await call.connect()
    await asyncio.sleep(0.3)
    await call.hang_up()
    await asyncio.wait_for(parrot.closed.wait(), 5)
    events = [m["event"] for m in parrot.messages]
    assert events[:2] == ["connected", "start"] and events[-1] == "stop"
    start = parrot.messages[1]["start"]
    assert start["callSid"] == call.call_sid and start["streamSid"] == call.stream_sid
    assert start["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    assert start["customParameters"]["From"] == "+15555550999"
    media_msgs = [m for m in parrot.messages if m["event"] == "media"]
    assert len(media_msgs) >= 5
    assert all(len(base64.b64decode(m["media"]["payload"])) == 160 for m in media_msgs)
    assert all(base64.b64decode(m["media"]["payload"]) == b"\xff" * 160 for m in media_msgs)
    stamps = [int(m["media"]["timestamp"]) for m in media_msgs]
    assert stamps == sorted(stamps) and stamps[1] - stamps[0] == 20
    seqs = [int(m["sequenceNumber"]) for m in parrot.messages[1:]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert parrot.messages[-1]["stop"]["callSid"] == call.call_sid
    assert call.ended_by == "caller" and call.closed


async def test_emulator_measures_the_reply_and_echoes_marks_after_playout(parrot):
    async with TwilioCallEmulator(f"ws://127.0.0.1:{parrot.port}") as call:
        clip = voice_like(0.8)
        turn = await call.say(clip)
        assert turn.caller_end_s - turn.caller_onset_s == pytest.approx(0.8, abs=0.05)
        start = await call.wait_for_bot_speech_start(timeout=5, after=turn.caller_end_s)
        assert turn.bot_audio_s == start and turn.latency_s > 0
        end = await call.wait_for_bot_silence(0.3, timeout=5)
        assert end - start == pytest.approx(0.8, abs=0.1)
        await asyncio.sleep(0.1)
        name, echoed_at = parrot.mark_echoes[0]
        assert name == "reply"
        assert echoed_at - parrot.sent_marks["reply"] >= 0.6  # only once the reply had played
        heard = np.frombuffer(call.heard_audio(start, end), "<i2")
        assert rms(heard.tobytes()) > 1000
        assert call.clears_received == 0


async def test_emulator_honours_clear(parrot):
    async with TwilioCallEmulator(f"ws://127.0.0.1:{parrot.port}") as call:
        await call.press("1")
        start = await call.wait_for_bot_speech_start(timeout=5)
        await asyncio.sleep(0.4)
        await call.press("2")
        end = await call.wait_for_bot_silence(0.3, timeout=5)
        assert call.clears_received == 1
        assert end - start < 1.5  # the rest of the 2 s tone was dropped
        await asyncio.sleep(0.1)
        assert [n for n, _ in parrot.mark_echoes] == ["tone"]  # echoed at once on clear
        assert call.marks_echoed == 1
        dtmf = [m for m in parrot.messages if m["event"] == "dtmf"]
        assert [m["dtmf"] for m in dtmf] == [
            {"track": "inbound_track", "digit": "1"},
            {"track": "inbound_track", "digit": "2"},
        ]


async def test_emulator_measures_barge_in(parrot):
    async with TwilioCallEmulator(f"ws://127.0.0.1:{parrot.port}") as call:
        await call.press("3")
        await call.wait_for_bot_speech_start(timeout=5)
        await asyncio.sleep(0.5)
        await call.say(voice_like(0.6))
        assert len(call.barge_ins) == 1
        barge = call.barge_ins[0]
        assert barge.clear_s is not None and barge.clear_s >= barge.caller_onset_s
        assert barge.bot_stopped_s is not None and 0 <= barge.latency_s < 1.0
        # the bot's audio did not play on after the clear
        after = call.heard_audio(barge.bot_stopped_s + 0.05, barge.bot_stopped_s + 0.6)
        assert rms(after) < 100 or call.turns[-1].bot_audio_s is not None


async def test_emulator_detects_the_server_closing(parrot):
    call = TwilioCallEmulator(f"ws://127.0.0.1:{parrot.port}", call_sid=new_sid("CA"))
    await call.connect()
    await call.press("9")
    assert await call.wait_closed(timeout=5) == "server"
    assert call.closed_by_server
    await call.hang_up()  # no-op once closed
    assert not any(m["event"] == "stop" for m in parrot.messages)
