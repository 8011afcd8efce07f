"""End to end over the SIP trunk: a real softphone (baresip) calls ``callagent serve``.

The test starts ``callagent serve`` as a separate process with SIP on a free loopback port
and the real models, and a headless baresip (``tests/support/baresip.py``) dials the agent
with RFC 4733 keys offered. The caller speaks with a flite voice (not the bot's): baresip's
audio source is switched from file to file (``/ausrc``) as the conversation goes on, and
what it hears (its decode dump) is transcribed with the project's recogniser. One call:
the greeting is heard, an FAQ is answered, a key press is answered, the caller talks over
the bot's answer (the bot stops and answers the new question), the caller hangs up, and
the call record is complete. Assertions are about behaviour, never about timing.
"""

from __future__ import annotations

import asyncio
import os
import re
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bot.settings import Settings
from integrations.speech.moonshine import MoonshineRecognizer
from simulator.phone import SPEECH_RMS
from simulator.voices import caller_voice
from tests.support.baresip import Baresip, baresip_binary
from tests.support.sip_serve import ServedSip, serve_sip

pytestmark = pytest.mark.e2e

CALLER = "15555550142"
REPLY_TIMEOUT_S = 60.0
QUIET_S = 1.5
"""The bot's reply is over when the softphone heard only silence for this long."""
RATE = 8000
BYTES_PER_S = RATE * 2
FRAME_BYTES = BYTES_PER_S // 50
"""20 ms of what the softphone heard."""
WAV_HEADER = 44


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedSip]:
    if caller_voice.engine() is None:
        pytest.skip("needs Debian's flite for the caller voice (apt-get install flite)")
    baresip_binary()  # skips when baresip is missing
    with serve_sip(tmp_path_factory.mktemp("sip-agent"), {"CALLAGENT_TRANSPORT": "sip"}) as served:
        yield served


@pytest.fixture(scope="module")
def recognizer() -> MoonshineRecognizer:
    """The project's recogniser (the cached model the agent uses), for what the phone heard."""
    return MoonshineRecognizer(cache_dir=Settings.load({}).cache_dir / "moonshine")


class Ear:
    """What the softphone heard so far: baresip's decode dump, read while it grows.

    The agent's RTP never stops (silence while the bot is quiet), so the bot's speech is
    found by level: 20 ms frames above :data:`SPEECH_RMS`; a reply is over once the last
    :data:`QUIET_S` of the dump are below it.
    """

    def __init__(self, phone: Baresip) -> None:
        self._phone = phone

    def heard(self) -> bytes:
        path = self._phone.heard_wav
        if path is None:
            return b""
        data = path.read_bytes()[WAV_HEADER:]
        return data[: len(data) // 2 * 2]

    @staticmethod
    def _voiced(data: bytes, since: int) -> tuple[int, int] | None:
        """Byte offsets of the first voiced frame's start and the last one's end after ``since``."""
        start = since - since % FRAME_BYTES
        usable = (len(data) - start) // FRAME_BYTES * FRAME_BYTES
        if usable <= 0:
            return None
        frames = np.frombuffer(data[start : start + usable], dtype="<i2").astype(np.float64)
        levels = np.sqrt((frames.reshape(-1, FRAME_BYTES // 2) ** 2).mean(axis=1))
        loud = np.flatnonzero(levels > SPEECH_RMS)
        if loud.size == 0:
            return None
        return start + int(loud[0]) * FRAME_BYTES, start + (int(loud[-1]) + 1) * FRAME_BYTES

    async def reply_start(self, since: int, *, timeout_s: float = REPLY_TIMEOUT_S) -> int:
        """Wait for the bot to start speaking after byte ``since``; its start."""
        async with asyncio.timeout(timeout_s):
            while (voiced := self._voiced(self.heard(), since)) is None:
                await asyncio.sleep(0.05)
        return voiced[0]

    async def reply(self, since: int, *, timeout_s: float = REPLY_TIMEOUT_S) -> bytes:
        """The bot's next reply after byte ``since``, once it went quiet."""
        start = await self.reply_start(since, timeout_s=timeout_s)
        return (await self.until_quiet(start, timeout_s=timeout_s))[start:]

    async def until_quiet(self, since: int, *, timeout_s: float = REPLY_TIMEOUT_S) -> bytes:
        """What was heard up to the end of the bot's speech after ``since``, once it went quiet."""
        async with asyncio.timeout(timeout_s):
            while True:
                data = self.heard()
                voiced = self._voiced(data, since)
                if voiced is not None and len(data) - voiced[1] >= QUIET_S * BYTES_PER_S:
                    return data[: voiced[1]]
                await asyncio.sleep(0.1)


def caller_wav(directory: Path, name: str, text: str, *, silence_s: float = 120.0) -> Path:
    """The caller saying ``text`` then silence, as baresip's aufile plays it (8 kHz mono)."""
    path = directory / f"{name}.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(caller_voice.synthesize(text) + b"\x00\x00" * int(RATE * silence_s))
    return path


async def say(phone: Baresip, wav: Path) -> None:
    """The caller speaks: the softphone's microphone becomes ``wav``."""
    await phone.command("ausrc", f"aufile,{wav}")


async def transcribe(recognizer: MoonshineRecognizer, pcm: bytes) -> str:
    text = await asyncio.to_thread(recognizer.transcribe, pcm, RATE)
    return re.sub(r"[^a-z0-9 ]", " ", text.lower())


def has_any(text: str, *words: str) -> bool:
    return any(w in text for w in words)


async def test_a_softphone_call_over_the_sip_trunk(agent: ServedSip, recognizer, tmp_path) -> None:
    hours = caller_wav(tmp_path, "hours", "What are your opening hours?")
    where = caller_wav(tmp_path, "where", "Sorry, where exactly are you located?")
    async with Baresip(user=CALLER, silence_s=300, workdir=tmp_path / "baresip") as phone:
        ear = Ear(phone)
        await phone.dial(agent.sip_uri())

        greeting = await ear.reply(0)
        heard = await transcribe(recognizer, greeting)
        assert has_any(heard, "brightside", "bright side", "riley", "help"), heard

        # an FAQ, spoken
        at = len(ear.heard())
        await say(phone, hours)
        answer = await ear.reply(at)
        full_answer_s = len(answer) / BYTES_PER_S
        heard = await transcribe(recognizer, answer)
        assert has_any(heard, "monday", "friday", "eight", "saturday"), heard

        # a key: 2 is the address on the agent's keypad menu (RFC 4733 from the softphone)
        at = len(ear.heard())
        await phone.send_dtmf("2")
        heard = await transcribe(recognizer, await ear.reply(at))
        assert has_any(heard, "harbor", "harbour", "street", "springfield", "library"), heard

        # barge-in: the caller asks again and talks over the answer with a new question
        at = len(ear.heard())
        await say(phone, hours)
        start = await ear.reply_start(at)
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            while len(ear.heard()) < start + BYTES_PER_S:  # a second of the answer heard
                await asyncio.sleep(0.02)
        await say(phone, where)
        cut = (await ear.until_quiet(start))[start:]
        assert len(cut) / BYTES_PER_S < 0.6 * full_answer_s, "the bot talked over the caller"
        at = len(ear.heard())
        heard = await transcribe(recognizer, await ear.reply(at))
        assert has_any(heard, "harbor", "harbour", "street", "springfield", "library"), heard

        await phone.hang_up()  # the caller's BYE

    await agent.until_no_calls()
    record = (await agent.sip_records(limit=10))[0]
    record = await agent.sip_record(record["provider_call_id"])
    assert (record["transport"], record["direction"]) == ("sip", "inbound")
    assert record["provider_call_id"] and record["ended_at"]
    assert "remote_bye" in record["end_reason"]
    turns = record["turns"]
    caller_turns = [t for t in turns if t.get("caller_text")]
    assert len(caller_turns) >= 4, turns  # hours, the key, hours again, where
    assert {"opening_hours", "location"} <= {t.get("intent") for t in turns}, turns
    assert any(t.get("path") == "dtmf" for t in turns), turns
    assert any(t.get("interrupted") for t in turns), turns  # the barge-in is recorded
    log = agent.log_text()
    assert CALLER not in log and "opening hours" not in log.lower()  # ids only in logs
    assert os.path.exists(agent.workdir / "data")
