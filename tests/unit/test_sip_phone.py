"""The simulator's SIP wire against a small real SIP user agent (aiosipua UAS + aiortp).

The peer here answers INVITEs like a SIP endpoint would (SDP answer from the offer,
G.711 RTP at 20 ms), plays a short tone as its "greeting", keeps what the caller sent
and the RFC 4733 digits it received, and can refuse calls, pick PCMA or hang up first.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from aiosipua import CallSession, IncomingCall, SipUAS

from simulator.audio_codec import rms
from simulator.phone import (
    CallEndedError,
    SipCallEmulator,
    SipCallRejectedError,
    SipTarget,
    TwilioCallEmulator,
)
from simulator.phone.sip import UdpTransport
from simulator.ports import free_rtp_port
from tests.support.sip_audio import tone


@dataclass
class PeerCall:
    call: IncomingCall
    session: CallSession
    heard: bytearray = field(default_factory=bytearray)
    digits: list[str] = field(default_factory=list)
    bye: asyncio.Event = field(default_factory=asyncio.Event)
    invite_text: str = ""


class Peer:
    """A SIP endpoint on loopback (what the agent's SIP side looks like from the phone)."""

    def __init__(self, *, codecs: list[int] | None = None, refuse: int = 0, greeting_s=0.6):
        self.codecs = codecs or [0, 8]
        self.refuse = refuse
        self.greeting_s = greeting_s
        self.calls: list[PeerCall] = []
        self.answered = asyncio.Event()
        self.transport = UdpTransport(local_addr=("127.0.0.1", 0))
        self.uas = SipUAS(self.transport)
        self.uas.on_invite = self._on_invite
        self.uas.on_bye = self._on_bye
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Peer:
        await self.uas.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for c in self.calls:
            await c.session.close()
        await self.uas.stop()

    @property
    def uri(self) -> str:
        host, port = self.transport.local_addr
        return f"sip:agent@{host}:{port}"

    def _on_invite(self, call: IncomingCall) -> None:
        if self.refuse:
            call.reject(self.refuse, "Busy Here")
            return
        assert call.sdp_offer is not None
        session = CallSession(
            "127.0.0.1", free_rtp_port("127.0.0.1"), call.sdp_offer, supported_codecs=self.codecs
        )
        peer_call = PeerCall(call, session, invite_text=call.invite.text)
        self.calls.append(peer_call)
        task = asyncio.ensure_future(self._answer(peer_call))
        self._tasks.add(task)

    async def _answer(self, c: PeerCall) -> None:
        await c.session.start()
        c.session.on_audio = lambda pcm, _ts: c.heard.extend(pcm)
        c.session.on_dtmf = lambda digit, _d: c.digits.append(digit)
        c.call.accept(c.session.sdp_answer)
        self.answered.set()
        await asyncio.sleep(0.3)
        await self.play(c, tone(self.greeting_s))

    async def play(self, c: PeerCall, pcm: bytes) -> None:
        ts = 1000
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(0, len(pcm) - 319, 320):
            c.session.send_audio_pcm(pcm[i : i + 320], ts)
            ts += 160
            await asyncio.sleep(max(0.0, start + (i // 320 + 1) * 0.02 - loop.time()))

    def _on_bye(self, call: IncomingCall, _request: object) -> None:
        for c in self.calls:
            if c.call.call_id == call.call_id:
                c.bye.set()


async def test_a_sip_call_offers_g711_hears_the_greeting_speaks_presses_and_hangs_up():
    async with Peer() as peer:
        call = SipCallEmulator(peer.uri, from_number="+15555550123")
        await call.connect(timeout_s=5)
        assert call.status == 200 and call.codec == "PCMU"
        offer = peer.calls[0].invite_text
        assert "m=audio" in offer and "RTP/AVP 0 8 101" in offer
        assert "a=rtpmap:101 telephone-event/8000" in offer and "a=ptime:20" in offer
        assert peer.calls[0].call.caller.startswith("sip:+15555550123@")

        start = await call.wait_for_bot_speech_start(timeout=5)
        end = await call.wait_for_bot_silence(0.5, timeout=5)
        assert 0.4 <= end - start <= 0.9  # the 0.6 s tone, heard in real time
        assert rms(call.heard_audio(start, end)) > 2000

        turn = await call.say(tone(0.5, hz=300))
        assert turn.caller_end_s > turn.caller_onset_s
        await call.press("1#")
        await asyncio.sleep(0.3)
        c = peer.calls[0]
        assert c.digits == ["1", "#"]  # RFC 4733 telephone-events, one per key
        assert rms(bytes(c.heard)) > 1000  # the caller's voice came through as G.711

        await call.hang_up()
        await asyncio.wait_for(c.bye.wait(), 2)  # BYE
        assert call.closed and call.ended_by == "caller"
        await call.hang_up()  # idempotent


async def test_the_answer_picks_pcma_and_the_call_still_flows():
    async with Peer(codecs=[8]) as peer:
        call = SipCallEmulator(peer.uri)
        await call.connect(timeout_s=5)
        assert call.codec == "PCMA"
        await call.wait_for_bot_speech_start(timeout=5)
        turn = await call.say(tone(0.3, hz=300))
        assert turn.caller_end_s > 0
        await asyncio.sleep(0.2)
        assert rms(bytes(peer.calls[0].heard)) > 1000
        await call.hang_up()


async def test_the_agents_bye_ends_the_call_from_the_server_side():
    async with Peer() as peer:
        call = SipCallEmulator(peer.uri)
        await call.connect(timeout_s=5)
        await call.wait_for_bot_speech_start(timeout=5)
        peer.calls[0].call.hangup()  # the agent sends BYE
        assert await call.wait_closed(2) == "server"
        assert call.closed_by_server
        with pytest.raises(CallEndedError):
            await call.say(tone(0.2))
        await call.hang_up()  # nothing more to send


async def test_a_refused_invite_raises_with_its_status():
    async with Peer(refuse=486) as peer:
        with pytest.raises(SipCallRejectedError) as refused:
            await SipCallEmulator(peer.uri).connect(timeout_s=5)
        assert refused.value.status == 486


def test_sip_uris_are_read_and_bad_ones_refused():
    target = SipTarget.parse("sip:agent@127.0.0.1:5070")
    assert (target.user, target.addr) == ("agent", ("127.0.0.1", 5070))
    assert SipTarget.parse("sip:10.0.0.5").addr == ("10.0.0.5", 5060)
    with pytest.raises(ValueError, match="sip:agent@HOST"):
        SipTarget.parse("http://127.0.0.1")


def test_both_wires_share_the_phone_api():
    for name in ("say", "press", "hang_up", "wait_for_bot_speech_start", "heard_audio"):
        assert getattr(SipCallEmulator, name) is not None
        assert getattr(TwilioCallEmulator, name) is not None


def test_targets_and_the_local_agent_know_the_sip_address():
    from simulator.local_agent import LocalAgent
    from simulator.target import Target

    target = Target.from_url("http://127.0.0.1:7860").over_sip("sip:agent@127.0.0.1:5070")
    assert target.sip_uri == "sip:agent@127.0.0.1:5070" and "over SIP" in target.label
    local = LocalAgent(sip_port=5070)
    env = local.settings_env()
    assert env["CALLAGENT_SIP_LISTEN"] == "127.0.0.1:5070"
    assert local.sip_uri == "sip:agent@127.0.0.1:5070"
    assert "CALLAGENT_SIP_LISTEN" not in LocalAgent().settings_env()


def test_simulate_refuses_a_bad_sip_uri(tmp_path, capsys):
    from bot.cli import main

    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: hi\nsteps:\n  - say: hello\n")
    assert main(["simulate", str(scenario), "--sip", "http://x", "--check"]) == 2
    assert "sip:agent@HOST" in capsys.readouterr().err
    assert main(["simulate", str(scenario), "--sip", "sip:agent@10.1.2.3", "--check"]) == 2
    assert main(["simulate", str(scenario), "--sip", "sip:agent@127.0.0.1:5070", "--check"]) == 0


def test_over_sip_a_barge_in_counts_when_the_audio_stops_at_the_phone():
    from simulator.scenarios.checks import CallFacts, check_step
    from simulator.scenarios.results import BargeIn, StepResult
    from simulator.scenarios.scenario_file import parse_scenario

    s = parse_scenario(
        "name: b\nsteps:\n  - say: hours?\n  - barge_in: where?\n    expect: {interrupted: true}\n",
        "b.yaml",
    )
    step = StepResult(2, "barge_in", "barge_in", caller_onset_s=5.0, caller_end_s=6.0)
    step.barge_in = BargeIn(5.0, True, bot_stopped_s=5.3, wire="sip")  # no 'clear' in SIP
    [check] = check_step(step, s.steps[1].expect, CallFacts(events_available=True))
    assert check.status == "pass" and "SIP phone" in check.actual
    step.barge_in = BargeIn(5.0, True, bot_stopped_s=9.0, wire="sip")  # talked on
    assert check_step(step, s.steps[1].expect, CallFacts())[0].status == "fail"
