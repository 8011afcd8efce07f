"""The SIP endpoint against real SIP peers: SIPp scenarios (tests/sip/) and a baresip softphone.

Each test starts a :class:`SipEndpoint` on a free loopback port with a small handler (the
``Bot`` of tests/support/sip_uac.py, or one that holds on or transfers), points a SIPp
scenario or baresip at it and asserts what both sides saw: SIP messages in SIPp's log, the
audio, keys, hold state and end reason at the handler. Seconds each.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.baresip import Baresip
from tests.support.sip_audio import dominant_hz, tone, write_tone_wav
from tests.support.sip_uac import Bot, config, energy, start_endpoint, until
from tests.support.sipp import Sipp, run_sipp
from transports.sip.contracts import InviteInfo, ReferOutcome, Refusal, SipCall
from transports.sip.endpoint import SipEndpoint

TONE_HZ = 440.0


def address(endpoint: SipEndpoint) -> str:
    host, port = endpoint.local_addr
    return f"{host}:{port}"


def sdp_direction(body: str) -> str:
    """The audio direction an SDP states (sendrecv when it states none)."""
    m = re.search(r"^a=(sendrecv|sendonly|recvonly|inactive)\s*$", body, re.M)
    return m.group(1) if m else "sendrecv"


def sdp_version(body: str) -> int:
    """The o= line's session version."""
    m = re.search(r"^o=\S+ \S+ (\d+) ", body, re.M)
    assert m, body
    return int(m.group(1))


@pytest.fixture
def caller_wav(tmp_path: Path) -> Path:
    return write_tone_wav(tmp_path / "caller.wav")


@pytest.fixture
async def bot() -> AsyncIterator[Bot]:
    yield Bot(greeting=tone(3.0, 1000.0))


async def test_sipp_call_with_rtp_and_rfc2833_keys(bot: Bot, caller_wav: Path) -> None:
    endpoint = await start_endpoint(bot)
    try:
        result = await run_sipp(
            "uac_dtmf.xml", address(endpoint), audio_wav=caller_wav, extra_args=["-d", "600"]
        )
        result.assert_ok()
        answer = result.received(200)[0].body
        assert re.search(r"^m=audio \d+ RTP/AVP 0", answer, re.M), answer
        assert bot.digits == ["1", "2", "#"]
        heard = bytes(bot.audio)
        assert len(heard) >= 320 * 25  # over half of the caller's 1.1 s of tone
        assert energy(heard) > 1000 and abs(dominant_hz(heard) - TONE_HZ) < 15
        await until(lambda: bot.calls[0].ended)
        assert bot.calls[0].end_reason == "remote_bye"
        assert bot.calls[0].call_id == result.sent("INVITE")[0].header("Call-ID")
    finally:
        await endpoint.stop()


@dataclass
class HoldWatcher(Bot):
    """A handler noting the hold state over time and when each 20 ms of audio came."""

    held_changes: list[tuple[float, bool]] = field(default_factory=list)
    audio_at: list[float] = field(default_factory=list)

    async def __call__(self, call: SipCall) -> None:
        self.calls.append(call)
        call.media.on_audio = lambda _pcm: self.audio_at.append(time.monotonic())
        call.media.send_pcm(tone(5.0, 1000.0))
        held = call.media.held
        while not call.ended:
            if call.media.held != held:
                held = call.media.held
                self.held_changes.append((time.monotonic(), held))
            await asyncio.sleep(0.01)


@pytest.mark.parametrize(("offer", "answer"), [("sendonly", "recvonly"), ("inactive", "inactive")])
async def test_sipp_hold_and_unhold_reinvites(offer: str, answer: str, caller_wav: Path) -> None:
    watcher = HoldWatcher()
    endpoint = await start_endpoint(watcher)
    try:
        result = await run_sipp(
            "uac_hold.xml",
            address(endpoint),
            audio_wav=caller_wav,
            keys={"hold_direction": offer},
            extra_args=["-d", "800"],
        )
        result.assert_ok()
        answers = [m.body for m in result.received(200) if "INVITE" in (m.header("CSeq") or "")]
        assert [sdp_direction(a) for a in answers] == ["sendrecv", answer, "sendrecv"]
        versions = [sdp_version(a) for a in answers]
        assert versions[0] < versions[1] < versions[2], versions
        assert "c=IN IP4 0.0.0.0" not in answers[2]
        assert [held for _, held in watcher.held_changes] == [True, False]
        unheld_at = watcher.held_changes[1][0]
        resumed = [t for t in watcher.audio_at if t > unheld_at]
        assert len(resumed) >= 25, "the caller's audio did not resume after the unhold"
    finally:
        await endpoint.stop()


@dataclass
class Transferor(Bot):
    """A handler that transfers the caller to ``target`` once the call is up."""

    target: str = ""
    outcomes: list[ReferOutcome] = field(default_factory=list)

    async def __call__(self, call: SipCall) -> None:
        self.calls.append(call)
        await asyncio.sleep(0.3)
        self.outcomes.append(await call.refer(self.target, timeout_s=5))
        ended = asyncio.Event()
        call.on_end(lambda _reason: ended.set())
        await ended.wait()


@pytest.mark.parametrize(
    ("target_scenario", "status"), [("uas_answer.xml", 200), ("uas_busy.xml", 486)]
)
async def test_refer_transfer_to_a_sipp_target(target_scenario: str, status: int) -> None:
    async with Sipp(target_scenario) as target:
        xfer = Transferor(target=target.uri("person"))
        endpoint = await start_endpoint(xfer)
        try:
            caller = await run_sipp("uac_refer.xml", address(endpoint), extra_args=["-d", "500"])
            reached = await target.wait()
            caller.assert_ok()
            reached.assert_ok()
            refer = caller.received("REFER")[0]
            assert target.address in (refer.header("Refer-To") or "")
            assert [(o.ok, o.status) for o in xfer.outcomes] == [(status == 200, status)]
            await until(lambda: xfer.calls[0].ended)
            expected = "transferred" if status == 200 else "remote_bye"
            assert xfer.calls[0].end_reason == expected
        finally:
            await endpoint.stop()


async def test_registration_with_digest_at_a_sipp_registrar() -> None:
    keys = {"username": "agent", "password": "s3cret", "expires": "2"}
    async with Sipp("uas_registrar.xml", keys=keys) as registrar:
        endpoint = await start_endpoint(
            Bot(),
            registrar=registrar.address,
            username="agent",
            password="s3cret",
            register_expires_s=2,
        )
        try:
            await until(lambda: granted(registrar) >= 2, timeout_s=6)
        finally:
            await endpoint.stop()
        await asyncio.sleep(0.3)
        served = await registrar.stop()
    assert served.failed == 0, served.explain()
    registers = served.received("REGISTER")
    assert len(registers) >= 4, served.explain()
    assert len({m.header("Call-ID") for m in registers}) == 1  # refreshes keep the Call-ID
    assert all('username="agent"' in (m.header("Authorization") or "") for m in registers[1:4:2])
    assert len(served.sent(200)) >= 2


def granted(registrar: Sipp) -> int:
    """How many 200 OKs the registrar has sent so far."""
    return sum(m.direction == "sent" and m.status == 200 for m in registrar.messages_so_far())


async def test_malformed_and_oversized_messages(bot: Bot, caller_wav: Path) -> None:
    endpoint = await start_endpoint(bot)
    try:
        padding = "x" * (endpoint.config.max_message_bytes + 1000)
        result = await run_sipp(
            "uac_malformed.xml", address(endpoint), audio_wav=caller_wav, keys={"padding": padding}
        )
        result.assert_ok()
        statuses = [m.status for m in result.messages if m.direction == "received"]
        assert statuses.count(400) >= 2, result.explain()
        oversized = [m for m in result.sent("OPTIONS") if "X-Padding" in m.text]
        answered_cseqs = {m.header("CSeq") for m in result.received(400) + result.received(200)}
        assert oversized and oversized[0].header("CSeq") not in answered_cseqs
        assert endpoint.counters.get("oversized", 0) >= 1
        assert endpoint.counters.get("malformed", 0) >= 1
        for answer in result.received(200) + result.received(400):
            assert (answer.header("To") or "").count("tag=") == 1, answer.text
        await until(lambda: bool(bot.calls) and bot.calls[0].ended)
        assert bot.calls[0].end_reason == "remote_bye"
        assert not endpoint.calls
    finally:
        await endpoint.stop()


async def test_twenty_simultaneous_sipp_calls(caller_wav: Path) -> None:
    live: list[int] = []
    per_call_audio: dict[str, int] = {}

    async def handler(call: SipCall) -> None:
        per_call_audio[call.call_id] = 0

        def heard(pcm: bytes) -> None:
            per_call_audio[call.call_id] += len(pcm)

        call.media.on_audio = heard
        live.append(len([c for c in endpoint.calls.values() if not c.ended]))
        ended = asyncio.Event()
        call.on_end(lambda _reason: ended.set())
        await ended.wait()

    def admit(invite: InviteInfo) -> Refusal | None:
        return None

    endpoint = SipEndpoint(config(), handler, admit)
    await endpoint.start()
    try:
        result = await run_sipp(
            "uac_call.xml",
            address(endpoint),
            calls=20,
            rate=200,
            audio_wav=caller_wav,
            extra_args=["-d", "3000"],  # all 20 overlap, even on a busy machine
            timeout_s=20,
        )
        result.assert_ok(calls=20)
        assert len(per_call_audio) == 20 and max(live) == 20
        assert all(n >= 320 * 25 for n in per_call_audio.values()), per_call_audio
        await until(lambda: not endpoint.calls)
    finally:
        await endpoint.stop()


async def test_baresip_calls_the_endpoint(bot: Bot, tmp_path: Path) -> None:
    endpoint = await start_endpoint(bot)
    try:
        async with Baresip(audio_wav=write_tone_wav(tmp_path / "voice.wav", 2.0)) as phone:
            host, port = endpoint.local_addr
            await phone.dial(f"sip:agent@{host}:{port}")
            await until(lambda: len(bot.audio) >= 320 * 25)
            await phone.send_dtmf("42#")
            await until(lambda: bot.digits == ["4", "2", "#"])
            await asyncio.sleep(1.0)
            await phone.hang_up()
            heard = phone.heard_pcm()
        await until(lambda: bot.calls[0].ended)
        assert bot.calls[0].end_reason == "remote_bye"
        assert bot.admitted[0].caller == "caller"
        assert abs(dominant_hz(bytes(bot.audio)) - TONE_HZ) < 15
        assert len(heard) >= 8000 * 2  # a second of the greeting
        assert abs(dominant_hz(heard) - 1000.0) < 15
    finally:
        await endpoint.stop()


async def test_unknown_sip_version_is_refused() -> None:
    """RFC 3261 8.2.1: 505 (or 400) for a SIP version we do not speak; still answering after."""
    endpoint = await start_endpoint(Bot())
    try:
        result = await run_sipp("uac_bad_version.xml", address(endpoint), timeout_s=5)
        result.assert_ok()
    finally:
        await endpoint.stop()


async def test_sipp_pcma_caller_from_a_capture(bot: Bot) -> None:
    capture = Path("/usr/share/sip-tester/g711a.pcap")
    if not capture.exists():
        pytest.skip(f"{capture} comes with Debian's sip-tester")
    endpoint = await start_endpoint(bot)
    try:
        result = await run_sipp(
            "uac_pcap.xml", address(endpoint), audio_pcap=capture, extra_args=["-d", "1500"]
        )
        result.assert_ok()
        assert "a=rtpmap:8 PCMA/8000" in result.received(200)[0].body
        assert len(bot.audio) >= 320 * 40 and energy(bytes(bot.audio)) > 100
        await until(lambda: bot.calls[0].ended)
    finally:
        await endpoint.stop()


async def test_baresip_holds_and_resumes(tmp_path: Path) -> None:
    watcher = HoldWatcher()
    endpoint = await start_endpoint(watcher)
    try:
        async with Baresip(audio_wav=write_tone_wav(tmp_path / "voice.wav", 1.0)) as phone:
            host, port = endpoint.local_addr
            await phone.dial(f"sip:agent@{host}:{port}")
            await asyncio.sleep(1.0)
            heard = phone.heard_pcm()  # the recording stops at the hold (baresip 1.0.0)
            await phone.hold()
            await until(lambda: [h for _, h in watcher.held_changes] == [True])
            before = await phone.rtp_received()
            await asyncio.sleep(1.0)
            during = await phone.rtp_received() - before
            await phone.resume()
            await until(lambda: [h for _, h in watcher.held_changes] == [True, False])
            resumed = await phone.rtp_received()
            await asyncio.sleep(1.0)
            after = await phone.rtp_received() - resumed
            await phone.hang_up()
        assert len(heard) >= 8000 and abs(dominant_hz(heard) - 1000.0) < 15
        assert during <= 5, f"the bot sent {during} packets while on hold"
        assert after >= 25, f"the bot's audio did not resume ({after} packets in 1 s)"
        unheld_at = watcher.held_changes[1][0]
        assert sum(t > unheld_at for t in watcher.audio_at) >= 25  # and the caller's
    finally:
        await endpoint.stop()
