"""The real SIP peers the SIP tests use (SIPp scenarios, a headless baresip), proven on each other.

SIPp plays both ends here: a caller against a callee, 20 calls at once, a transferee with a
transferor and a transfer target (answering or busy), a phone against the digest registrar;
baresip calls a SIPp callee and hears its audio. Each test takes a few seconds.
"""

from __future__ import annotations

import asyncio
import math
import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.support.baresip import Baresip
from tests.support.sipp import Sipp, parse_messages, run_sipp


def tone_wav(path: Path, hz: float = 440.0, seconds: float = 1.0, rate: int = 8000) -> Path:
    """A sine tone WAV (mono 16-bit)."""
    n = int(rate * seconds)
    samples = (int(8000 * math.sin(2 * math.pi * hz * i / rate)) for i in range(n))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return path


def dominant_hz(pcm16: bytes, rate: int = 8000) -> float:
    """The strongest frequency in 16-bit PCM."""
    audio = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(audio))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum)) * rate / len(audio)


def test_message_log_is_parsed() -> None:
    log = (
        "----------------------------------------------- 2026-12-05 09:27:48.070284\n"
        "UDP message sent (60 bytes):\n\nOPTIONS sip:a@127.0.0.1 SIP/2.0\nCSeq: 1 OPTIONS\n\n"
        "----------------------------------------------- 2026-12-05 09:27:48.070680\n"
        "UDP message received [60] bytes :\n\nSIP/2.0 200 OK\nCSeq: 1 OPTIONS\n"
        "Content-Type: message/sipfrag\n\nSIP/2.0 100 Trying\n"
    )
    sent, received = parse_messages(log)
    assert (sent.direction, sent.method, sent.status) == ("sent", "OPTIONS", None)
    assert (received.direction, received.status) == ("received", 200)
    assert received.header("content-type") == "message/sipfrag"
    assert received.body.strip() == "SIP/2.0 100 Trying"


async def test_sipp_caller_calls_sipp_callee_with_rtp(tmp_path: Path) -> None:
    wav = tone_wav(tmp_path / "tone.wav")
    async with Sipp("uas_answer.xml", audio_wav=wav) as callee:
        caller = await run_sipp(
            "uac_call.xml", callee.address, audio_wav=wav, extra_args=["-d", "500"]
        )
        answered = await callee.wait()
    assert (caller.exit_code, caller.successful, caller.failed) == (0, 1, 0), caller.explain()
    assert [m.first_line.split(" ")[0] for m in caller.sent("INVITE") + caller.sent("BYE")] == [
        "INVITE",
        "BYE",
    ]
    assert "m=audio" in caller.received(200)[0].body
    assert answered.successful == 1, answered.explain()
    assert "a=rtpmap:96 telephone-event/8000" in answered.received("INVITE")[0].body


async def test_twenty_simultaneous_sipp_calls(tmp_path: Path) -> None:
    async with Sipp("uas_answer.xml", calls=20) as callee:
        caller = await run_sipp(
            "uac_call.xml", callee.address, calls=20, rate=100, extra_args=["-d", "1000"]
        )
        answered = await callee.wait()
    assert (caller.successful, caller.failed) == (20, 0), caller.explain()
    assert answered.successful == 20, answered.explain()
    assert len({m.header("Call-ID") for m in caller.sent("INVITE")}) == 20


@pytest.mark.parametrize(
    ("target_scenario", "outcome"), [("uas_answer.xml", 200), ("uas_busy.xml", 486)]
)
async def test_sipp_transferee_calls_the_refer_target(target_scenario: str, outcome: int) -> None:
    async with Sipp(target_scenario) as target:
        async with Sipp("uas_transferor.xml", keys={"target_port": str(target.port)}) as agent:
            transferee = await run_sipp("uac_refer.xml", agent.address, extra_args=["-d", "500"])
            transferor = await agent.wait()
        reached = await target.wait()
    assert transferee.successful == 1, transferee.explain()
    assert transferor.successful == 1, transferor.explain()
    assert reached.successful == 1, reached.explain()
    frags = [m.body.strip() for m in transferor.received("NOTIFY")]
    assert frags[0] == "SIP/2.0 100 Trying"
    assert frags[1].startswith(f"SIP/2.0 {outcome}")
    assert reached.received("INVITE")[0].first_line.startswith(
        f"INVITE sip:person@{target.address}"
    )


@pytest.mark.parametrize(("password", "ok"), [("s3cret", True), ("wrong", False)])
async def test_sipp_registrar_challenges_and_checks_the_digest(password: str, ok: bool) -> None:
    keys = {"username": "agent", "password": "s3cret", "expires": "2"}
    async with Sipp("uas_registrar.xml", keys=keys) as registrar:
        phone = await run_sipp(
            "uac_register.xml",
            registrar.address,
            keys={**keys, "password": password},
            auth=("agent", password),
        )
        await registrar.stop()
        served = await registrar.wait()
    assert [m.status for m in served.sent(401)] == [401] * (2 if ok else 1)
    if ok:
        assert phone.successful == 1, phone.explain()
        assert len(served.sent(200)) == 2
        assert all(
            "Digest" in (m.header("Authorization") or "") for m in served.received("REGISTER")[1::2]
        )
    else:
        assert phone.failed == 1 and served.sent(403), served.explain()


async def test_baresip_calls_a_sipp_callee_and_hears_it(tmp_path: Path) -> None:
    callee_audio = tone_wav(tmp_path / "callee.wav", hz=1000.0, seconds=3.0)
    caller_audio = tone_wav(tmp_path / "caller.wav", hz=440.0, seconds=1.0)
    async with Sipp("uas_answer.xml", audio_wav=callee_audio) as callee:
        async with Baresip(audio_wav=caller_audio, silence_s=10) as phone:
            established = await phone.dial(callee.uri())
            assert established["peeruri"] == callee.uri()
            await phone.send_dtmf("1#")
            await asyncio.sleep(1.0)  # listen to the callee
            closed = await phone.hang_up()
            heard = phone.heard_pcm()
        answered = await callee.wait()
    assert closed["type"] == "CALL_CLOSED"
    assert answered.successful == 1 and answered.received("BYE"), answered.explain()
    offer = answered.received("INVITE")[0]
    assert "c=IN IP4 127.0.0.1" in offer.body and "PCMU/8000" in offer.body
    assert len(heard) > 8000  # more than half a second heard
    assert abs(dominant_hz(heard) - 1000.0) < 20
