"""End to end: ``callagent call --channel sip`` through a real ``callagent serve`` and SIPp.

A real server process (``simulator.local_agent.LocalAgent`` in process mode: its models, its SIP
endpoint on a free UDP port) places reminder calls through its SIP trunk
(``CALLAGENT_SIP_OUTBOUND_PROXY``) to a SIPp callee (``tests/sip/uas_outbound_callee.xml``)
that answers and plays, as RTP, what the simulator's callee voice says:

- a person: "Hello?", then silence until they hang up -> the agent's own detection
  (a trunk has no carrier AMD) says human, the opening goes out, the attempt ends
  ``completed`` answered by ``human``;
- a voicemail: a greeting, then a beep -> machine; the voicemail line after the beep, the
  agent hangs up (SIPp gets our BYE), ``voicemail-left`` answered by ``machine``;
- a busy line (``uas_busy.xml``, 486) -> ``busy`` with error 486.

Each callee binds the same proxy address in turn (one server, one setting).
"""

from __future__ import annotations

import asyncio
import os
import sys
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from simulator.local_agent import LocalAgent
from simulator.outbound.callee import Beep, speech
from simulator.ports import free_rtp_port, free_udp_port
from simulator.voices import caller_voice
from simulator.voices.caller_voice import DEFAULT_VOICE
from tests.support.sipp import Sipp, sipp_binary

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

CALLEE = "+15555550142"  # demo customer James, an appointment tomorrow
OUR_NUMBER = "+15555550100"
GREETING = "Hi, you've reached James. I can't take your call right now. Please leave a message."
CALL_ARGS = (
    *(CALLEE, "--channel", "sip", "--agent", "appointment_reminders"),
    *("--var", "first_name=James", "--var", "appointment=tomorrow at 10 AM", "--wait"),
    *("--timeout", "120"),
)


def write_wav(path: Path, pcm: bytes) -> Path:
    """16-bit mono 8 kHz PCM as a WAV."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm)
    return path


@pytest.fixture(scope="module")
def proxy_port() -> int:
    return free_udp_port()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(proxy_port: int) -> AsyncIterator[LocalAgent]:
    sipp_binary()  # skips without SIPp
    if caller_voice.engine() is None:
        pytest.skip("needs Debian's flite for the callee's voice (apt-get install flite)")
    rtp = free_rtp_port()
    local = LocalAgent(
        mode="process",
        env={
            "CALLAGENT_SIP_LISTEN": f"127.0.0.1:{free_udp_port()}",
            "CALLAGENT_SIP_RTP_PORTS": f"{rtp}-{rtp + 40}",
            "CALLAGENT_SIP_OUTBOUND_PROXY": f"127.0.0.1:{proxy_port}",
            "CALLAGENT_SIP_CALLER_ID": OUR_NUMBER,
        },
        ready_timeout_s=300,
    )
    await local.start()
    yield local
    await local.stop()


async def call(local: LocalAgent) -> str:
    """``callagent call ... --channel sip --wait``; its output."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bot.cli", "call", *CALL_ARGS, "--server", local.base_url),
        env={**os.environ, "CALLAGENT_OPERATOR_TOKEN": local.operator_token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 180)
    text = out.decode(errors="replace")
    assert process.returncode == 0, text
    return text


def callee(tmp_path: Path, proxy_port: int, audio: bytes, hangup_ms: int) -> Sipp:
    return Sipp(
        "uas_outbound_callee.xml",
        fill={"hangup_ms": str(hangup_ms)},
        port=proxy_port,
        timeout_s=150,
        audio_wav=write_wav(tmp_path / "callee.wav", audio),
        workdir=tmp_path / "sipp",
    )


async def record_of(local: LocalAgent, attempt_line: str) -> dict[str, object]:
    attempt_id = attempt_line.split()[1]
    headers = {"Authorization": f"Bearer {local.operator_token}"}
    async with httpx.AsyncClient(base_url=local.base_url, headers=headers) as client:
        attempt = (await client.get(f"/api/calls/outbound/{attempt_id}")).json()
        record = (await client.get(f"/api/calls/{attempt['call_id']}")).json()
    return record


async def test_a_person_who_says_hello_hears_the_opening(
    served: LocalAgent, proxy_port: int, tmp_path: Path
) -> None:
    hello = await asyncio.to_thread(speech, "Hello?", DEFAULT_VOICE, 1.0)
    audio = caller_voice.silence(0.3) + hello + caller_voice.silence(30.0)
    async with callee(tmp_path, proxy_port, audio, hangup_ms=14000) as sipp:
        out = await call(served)
        result = await sipp.wait()
    assert "ended: completed, answered by human" in out, out
    assert result.successful == 1, result.explain()
    assert result.sent("BYE"), "the person hung up"
    record = await record_of(served, out.splitlines()[0])
    assert record["amd_verdict"] == "human"
    assert record["transport"] == "sip"


async def test_a_voicemail_gets_the_message_after_the_beep(
    served: LocalAgent, proxy_port: int, tmp_path: Path
) -> None:
    greeting = await asyncio.to_thread(speech, GREETING, DEFAULT_VOICE, 1.0)
    audio = greeting + caller_voice.silence(0.3) + Beep().pcm() + caller_voice.silence(40.0)
    async with callee(tmp_path, proxy_port, audio, hangup_ms=60000) as sipp:
        out = await call(served)
        result = await sipp.wait()
    assert "ended: voicemail-left, answered by machine" in out, out
    assert result.received("BYE"), "the agent hung up after its message"
    record = await record_of(served, out.splitlines()[0])
    assert record["amd_verdict"] == "machine"


async def test_a_busy_line_is_busy(served: LocalAgent, proxy_port: int) -> None:
    async with Sipp("uas_busy.xml", port=proxy_port, timeout_s=60) as sipp:
        out = await call(served)
        result = await sipp.stop()
    assert "ended: busy (error 486)" in out, out
    assert len(result.received("INVITE")) == 1
