"""A headless baresip (Debian ``baresip-core`` 1.0.0): a real softphone as a test's caller.

Each :class:`Baresip` gets its own configuration directory: one account
``<sip:caller@127.0.0.1>;regint=0;audio_codecs=PCMU`` (no registration), SIP on a free
loopback port (``-n 127.0.0.1`` so its SDP offers 127.0.0.1, not the host's address), the
caller's voice from a WAV through ``aufile``, and what it hears written by ``sndfile``
(its decode dump, ``heard_wav``). The player is ALSA's ``null`` device: nothing is played,
the decoder still runs. It is driven through ``ctrl_tcp`` (netstring-framed JSON commands:
``/dial``, ``/sndcode`` (a DTMF key, RFC 4733 when the far end offered telephone-event),
``/hold``, ``/resume``, ``/ausrc`` (switch what the caller says), ``/hangup``, ``/quit``)
and reports its events (``CALL_ESTABLISHED``, ``CALL_CLOSED``, ...) the same way.

baresip 1.0.0 facts the harness works around: ``aufile`` ends the call when the WAV ends
("end of file"), so the caller's audio is padded with ``silence_s`` of silence; ``aufile``
does not resample, so the WAV is written as 8 kHz mono 16-bit; ``/sndcode``, ``/hold`` and
``/resume`` exist only while a call is up; after a hold and resume the recording stops (see
:meth:`Baresip.rtp_received` for what still counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import tempfile
import wave
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from integrations.speech.audio import resample_pcm16
from simulator.ports import free_tcp_port, free_udp_port

BARESIP_SKIP = (
    "baresip tests need baresip (apt-get install baresip-core; scripts/test.sh installs it)"
)
MODULES = Path("/usr/lib/baresip/modules")
WAV_HEADER_BYTES = 44
"""sndfile's dump is a plain 16-bit PCM WAV; its header is rewritten only when it closes."""
NEEDED_MODULES = ("g711", "aufile", "alsa", "sndfile", "ctrl_tcp", "account", "menu")


def baresip_binary() -> str:
    """The ``baresip`` executable with the modules the harness loads, or skip the test."""
    path = shutil.which("baresip")
    if path is None:
        pytest.skip(BARESIP_SKIP)
    missing = [m for m in NEEDED_MODULES if not (MODULES / f"{m}.so").exists()]
    if missing:
        pytest.skip(f"baresip lacks modules {missing} in {MODULES} (baresip-core 1.0.0 has them)")
    return path


def write_caller_wav(source: Path | None, out: Path, silence_s: float) -> Path:
    """The caller's audio as aufile needs it: 8 kHz mono 16-bit, ``silence_s`` of silence after."""
    pcm = b""
    if source is not None:
        with wave.open(str(source), "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise ValueError(f"{source}: need mono 16-bit PCM")
            pcm = resample_pcm16(w.readframes(w.getnframes()), w.getframerate(), 8000)
    pcm += b"\x00\x00" * int(8000 * silence_s)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm)
    return out


def netstring(payload: dict[str, Any]) -> bytes:
    """One ctrl_tcp frame."""
    data = json.dumps(payload).encode()
    return str(len(data)).encode() + b":" + data + b","


class BaresipError(RuntimeError):
    """baresip refused a command or did not report an event in time."""


class Baresip:
    """One headless baresip process with its own configuration (async).

    Args:
        audio_wav: What the caller says (any rate, mono 16-bit); None for silence only.
        silence_s: Silence after it (baresip hangs up when its audio file ends).
        user: The account's user part (the caller id the agent sees).
        workdir: The configuration directory (a temporary one if None).
    """

    def __init__(
        self,
        *,
        audio_wav: Path | None = None,
        silence_s: float = 60.0,
        user: str = "caller",
        workdir: Path | None = None,
    ) -> None:
        self.binary = baresip_binary()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="baresip-")
            workdir = Path(self._tmp.name)
        self.workdir = workdir
        self.recordings = workdir / "recordings"
        self.recordings.mkdir(parents=True, exist_ok=True)
        self.sip_port = free_udp_port()
        self.ctrl_port = free_tcp_port()
        self.user = user
        self.caller_wav = write_caller_wav(audio_wav, workdir / "caller.wav", silence_s)
        self.events: list[dict[str, Any]] = []
        self._event_added = asyncio.Event()
        self._responses: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task[None] | None = None
        self._token = 0
        self._write_config()

    def _write_config(self) -> None:
        config = {
            "poll_method": "epoll",
            "sip_listen": f"127.0.0.1:{self.sip_port}",
            "call_local_timeout": "30",
            "call_max_calls": "4",
            "audio_player": "alsa,null",
            "audio_alert": "alsa,null",
            "audio_source": f"aufile,{self.caller_wav}",
            "ausrc_srate": "8000",
            "auplay_srate": "8000",
            "ausrc_channels": "1",
            "auplay_channels": "1",
            "jitter_buffer_delay": "1-10",
            "rtp_stats": "no",
            "snd_path": str(self.recordings),
            "module_path": str(MODULES),
            "ctrl_tcp_listen": f"127.0.0.1:{self.ctrl_port}",
        }
        lines = [f"{k}\t\t{v}" for k, v in config.items()]
        lines += [f"module\t\t{m}.so" for m in ("g711", "aufile", "alsa", "sndfile", "ctrl_tcp")]
        lines += ["module_tmp\t\taccount.so", "module_app\t\tmenu.so"]
        (self.workdir / "config").write_text("\n".join(lines) + "\n")
        (self.workdir / "accounts").write_text(
            f"<sip:{self.user}@127.0.0.1>;regint=0;audio_codecs=PCMU\n"
        )

    @property
    def log(self) -> str:
        """baresip's console output so far."""
        path = self.workdir / "baresip.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def heard_wav(self) -> Path | None:
        """The newest decode dump: what baresip heard in its last call (8 kHz mono)."""
        dumps = sorted(self.recordings.glob("dump-*-dec.wav"), key=lambda p: p.stat().st_mtime)
        return dumps[-1] if dumps else None

    def heard_pcm(self) -> bytes:
        """What :attr:`heard_wav` holds so far, 16-bit PCM at 8 kHz (readable while the call
        goes on: the dump grows as RTP arrives, so a pause in the far end's audio leaves no gap)."""
        path = self.heard_wav
        if path is None:
            return b""
        data = path.read_bytes()[WAV_HEADER_BYTES:]
        return data[: len(data) // 2 * 2]

    async def start(self) -> Baresip:
        """Start baresip and connect to its control port."""
        log = (self.workdir / "baresip.log").open("wb")
        self._proc = await asyncio.create_subprocess_exec(
            self.binary,
            *("-f", str(self.workdir), "-n", "127.0.0.1"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        log.close()
        for _ in range(100):
            if self._proc.returncode is not None:
                raise BaresipError(f"baresip exited {self._proc.returncode}:\n{self.log[-2000:]}")
            try:
                self._reader, self._writer = await asyncio.open_connection(
                    "127.0.0.1", self.ctrl_port
                )
                break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            raise BaresipError(f"baresip's ctrl_tcp never listened:\n{self.log[-2000:]}")
        self._read_task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        reader = self._reader
        assert reader is not None
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                size = await reader.readuntil(b":")
                frame = await reader.readexactly(int(size[:-1]) + 1)
                message: dict[str, Any] = json.loads(frame[:-1])
                if message.get("response"):
                    future = self._responses.pop(str(message.get("token")), None)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif message.get("event"):
                    self.events.append(message)
                    self._event_added.set()

    async def command(self, command: str, params: str = "", *, timeout_s: float = 5.0) -> str:
        """Run a menu command (``dial``, ``hangup``, ``sndcode``, ...); returns its output."""
        writer = self._writer
        if writer is None:
            raise BaresipError("baresip is not started")
        self._token += 1
        token = str(self._token)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._responses[token] = future
        writer.write(netstring({"command": command, "params": params, "token": token}))
        await writer.drain()
        response = await asyncio.wait_for(future, timeout_s)
        if not response.get("ok"):
            raise BaresipError(f"/{command} failed: {response.get('data')!r}")
        return str(response.get("data", ""))

    async def wait_event(self, kind: str, *, timeout_s: float = 10.0) -> dict[str, Any]:
        """The first event of type ``kind`` (``CALL_ESTABLISHED``, ``CALL_CLOSED``, ...)."""
        async with asyncio.timeout(timeout_s):
            while True:
                for event in self.events:
                    if event.get("type") == kind:
                        return event
                self._event_added.clear()
                await self._event_added.wait()

    def saw(self, kind: str) -> bool:
        """An event of type ``kind`` came."""
        return any(e.get("type") == kind for e in self.events)

    async def dial(self, uri: str, *, timeout_s: float = 10.0) -> dict[str, Any]:
        """Call ``uri`` and wait until the call is established (its event)."""
        await self.command("dial", uri)
        async with asyncio.timeout(timeout_s):
            while True:
                for event in self.events:
                    if event.get("type") == "CALL_ESTABLISHED":
                        return event
                    if event.get("type") == "CALL_CLOSED":
                        raise BaresipError(f"call closed before answer: {event.get('param')!r}")
                self._event_added.clear()
                await self._event_added.wait()

    async def send_dtmf(self, keys: str, *, gap_s: float = 0.25) -> None:
        """Key ``keys`` one by one (RFC 4733 events when the far end offered them)."""
        for key in keys:
            await self.command("sndcode", key)
            await asyncio.sleep(gap_s)

    async def hang_up(self, *, timeout_s: float = 5.0) -> dict[str, Any]:
        """Hang up (BYE) and wait for the call to close."""
        await self.command("hangup")
        return await self.wait_event("CALL_CLOSED", timeout_s=timeout_s)

    async def rtp_received(self) -> int:
        """RTP packets the current call has received (from ``/audio_debug``'s RTCP section).

        A count that keeps working where the recording does not: after ``/hold`` and
        ``/resume`` baresip 1.0.0 rebuilds its receive pipeline without the ``sndfile``
        filter (``audio rx pipeline: alsa <--- PCMU``), so :attr:`heard_wav` stops growing.
        """
        found = re.findall(r"rcvd=(\d+)", await self.command("audio_debug"))
        return int(found[-1]) if found else 0

    async def hold(self) -> None:
        """Put the call on hold (a re-INVITE with ``a=sendonly``)."""
        await self.command("hold")

    async def resume(self) -> None:
        """Take the call off hold (a re-INVITE with ``a=sendrecv``)."""
        await self.command("resume")

    async def stop(self) -> None:
        """Quit baresip (killed if it lingers) and close the control connection."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(BaresipError, TimeoutError, ConnectionError):
                await self.command("quit", timeout_s=2)
            try:
                await asyncio.wait_for(proc.wait(), 3)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._read_task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()

    async def __aenter__(self) -> Baresip:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
