"""SIPp scenarios against a real ``callagent serve`` with SIP on (the real models, records).

One server for the module, registered (digest) at a SIPp registrar, its agent's
``transfer.target`` a SIPp callee; SIPp callers then place a call with RTP and RFC 2833 keys,
put a call on hold and take it off, ask (in a flite voice) for a person and follow the
agent's REFER to the target, send malformed, oversized and wrong-version messages, and
place 21 calls at once (20 answered, the cap). Each scenario takes
seconds once the server is up; the records and ``/readyz`` are read back over HTTP.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.voices import caller_voice
from tests.support.sip_audio import write_tone_wav
from tests.support.sip_serve import ROOT, ServedSip, serve_sip
from tests.support.sipp import Sipp, run_sipp, sipp_binary

pytestmark = pytest.mark.e2e

DIGEST = {"username": "agent", "password": "s3cret-for-tests", "expires": "300"}


@pytest.fixture(scope="module")
def registrar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sipp]:
    sipp_binary()  # skips when SIPp is missing
    sipp = Sipp(
        "uas_registrar.xml",
        keys=DIGEST,
        timeout_s=3600,
        workdir=tmp_path_factory.mktemp("registrar"),
    )
    process: subprocess.Popen[bytes] = sipp.popen()
    try:
        yield sipp
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def transfer_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sipp]:
    sipp_binary()
    sipp = Sipp("uas_answer.xml", timeout_s=3600, workdir=tmp_path_factory.mktemp("target"))
    process = sipp.popen()
    try:
        yield sipp
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, registrar: Sipp, transfer_target: Sipp
) -> Iterator[ServedSip]:
    workdir = tmp_path_factory.mktemp("sip-serve")
    agent_file = workdir / "dental_front_desk.yaml"
    reference = (ROOT / "bot" / "agents" / "dental_front_desk.yaml").read_text()
    target = f'target: "{transfer_target.uri("person")}"'
    agent_file.write_text(reference.replace('target: "+15555550100"', target, 1))
    env = {
        "CALLAGENT_MAX_CALLS": "20",
        "CALLAGENT_AGENT_FILE": str(agent_file),
        "CALLAGENT_SIP_REGISTRAR": registrar.address,
        "CALLAGENT_SIP_USERNAME": DIGEST["username"],
        "CALLAGENT_SIP_PASSWORD": DIGEST["password"],
        "CALLAGENT_SIP_TRUNKS": "127.0.0.1/32",  # the registrar's host: INVITEs trusted by source
    }
    with serve_sip(workdir, env) as served:
        yield served


@pytest.fixture
def caller_wav(tmp_path: Path) -> Path:
    return write_tone_wav(tmp_path / "caller.wav", seconds=1.0)


async def test_the_server_registers_with_digest(server: ServedSip, registrar: Sipp) -> None:
    def granted() -> bool:
        return any(m.direction == "sent" and m.status == 200 for m in registrar.messages_so_far())

    async with asyncio.timeout(10):
        while not granted():
            await asyncio.sleep(0.2)
    seen = registrar.messages_so_far()
    registers = [m for m in seen if m.method == "REGISTER"]
    assert registers[0].header("Authorization") is None
    assert 'username="agent"' in (registers[1].header("Authorization") or "")
    assert DIGEST["password"] not in server.log_text()


async def test_a_sipp_call_with_keys_is_answered_and_recorded(
    server: ServedSip, caller_wav: Path
) -> None:
    result = await run_sipp(
        "uac_dtmf.xml",
        server.sip_address,
        service="dental_front_desk",
        audio_wav=caller_wav,
        extra_args=["-d", "2000"],
    )
    result.assert_ok()
    await server.until_no_calls()
    record = await server.sip_record(result.sent("INVITE")[0].header("Call-ID") or "")
    assert record["direction"] == "inbound" and record["ended_at"]
    assert "remote_bye" in record["end_reason"]


async def test_hold_and_unhold_on_the_server(server: ServedSip, caller_wav: Path) -> None:
    result = await run_sipp(
        "uac_hold.xml",
        server.sip_address,
        service="dental_front_desk",
        audio_wav=caller_wav,
        keys={"hold_direction": "sendonly"},
        extra_args=["-d", "1000"],
    )
    result.assert_ok()
    answers = [m.body for m in result.received(200) if "INVITE" in (m.header("CSeq") or "")]
    directions = [re.search(r"^a=(sendrecv|sendonly|recvonly|inactive)", a, re.M) for a in answers]
    assert [d.group(1) if d else "sendrecv" for d in directions] == [
        "sendrecv",
        "recvonly",
        "sendrecv",
    ]
    await server.until_no_calls()


async def test_asking_for_a_person_refers_the_caller_to_the_target(
    server: ServedSip, transfer_target: Sipp, tmp_path: Path
) -> None:
    if caller_voice.engine() is None:
        pytest.skip("needs Debian's flite for the caller voice (apt-get install flite)")
    pause = b"\x00\x00" * 8000 * 4  # the greeting first
    ask = caller_voice.synthesize("I would like to talk to a person, please.")
    wav = tmp_path / "ask.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pause + ask + pause * 10)
    result = await run_sipp(
        "uac_refer.xml",
        server.sip_address,
        service="dental_front_desk",
        audio_wav=wav,
        extra_args=["-d", "1000"],
        timeout_s=60,
    )
    result.assert_ok()
    refer = result.received("REFER")[0]
    assert transfer_target.address in (refer.header("Refer-To") or "")
    frags = [m.body.strip() for m in result.sent("NOTIFY")]
    assert frags == ["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]
    reached = transfer_target.messages_so_far()
    assert [m.method for m in reached if m.direction == "received"][:2] == ["INVITE", "ACK"]
    await server.until_no_calls()
    record = await server.sip_record(result.sent("INVITE")[0].header("Call-ID") or "")
    assert record["escalation"]["transfer_result"] == "transferred", record["escalation"]
    assert "transferred" in record["end_reason"], record["end_reason"]


async def test_bad_messages_leave_the_server_serving(server: ServedSip, caller_wav: Path) -> None:
    padding = "x" * 9000  # over the endpoint's 8 KiB datagram limit
    bad = await run_sipp(
        "uac_malformed.xml",
        server.sip_address,
        service="dental_front_desk",
        audio_wav=caller_wav,
        keys={"padding": padding},
    )
    bad.assert_ok()
    version = await run_sipp("uac_bad_version.xml", server.sip_address, timeout_s=5)
    version.assert_ok()
    await server.until_no_calls()
    ready = await server.ready()
    assert ready["sip"]["role"] == "serving"
    assert server.process.poll() is None


async def test_twenty_simultaneous_calls_and_the_cap(server: ServedSip, caller_wav: Path) -> None:
    """21 callers at once: the 20 the cap (CALLAGENT_MAX_CALLS=20) allows are answered and
    recorded, the 21st gets 486 Busy Here."""
    before = {r["id"] for r in await server.sip_records(limit=200)}
    most: list[int] = [0]

    async def watch() -> None:
        while True:
            most[0] = max(most[0], (await server.ready())["slots_in_use"])
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch())
    result = await run_sipp(
        "uac_call.xml",
        server.sip_address,
        service="dental_front_desk",
        calls=21,
        rate=21,
        audio_wav=caller_wav,
        extra_args=["-d", "4000"],
        timeout_s=60,
    )
    watcher.cancel()
    assert (result.successful, result.failed) == (20, 1), result.explain()
    assert [m.status for m in result.received(486)] == [486], result.explain()
    assert most[0] == 20, f"at most {most[0]} calls at once"
    await server.until_no_calls(timeout_s=60)
    new = [r for r in await server.sip_records(limit=200) if r["id"] not in before]
    answers = [m for m in result.received(200) if "INVITE" in (m.header("CSeq") or "")]
    call_ids = {m.header("Call-ID") for m in answers}
    assert len(call_ids) == 20
    assert {r["provider_call_id"] for r in new} == call_ids
    assert all("remote_bye" in r["end_reason"] for r in new), new
