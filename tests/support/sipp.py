"""Run SIPp (Debian ``sip-tester``, SIPp 3.6.1) scenarios from ``tests/sip/`` as real SIP peers.

Each :class:`Sipp` is one SIPp process in its own working directory, on a free loopback
port, with a global timeout; when it ends the result carries the exit code, the call
counts from ``-trace_stat`` and every SIP message it sent and received (``-trace_msg``)
for assertions. Tests skip with a clear reason when ``sipp`` is not installed.

SIPp 3.6.1 facts the scenarios rely on (checked on Debian 12's build, which has PCAP and
RTPSTREAM): ``<exec rtp_stream="caller.ulaw,-1,0"/>`` streams a headerless G.711 file
(paths are literal, so the harness writes the audio into the working directory as
``caller.ulaw``); ``<exec play_pcap_audio="audio.pcap"/>`` replays a capture's RTP (Debian
ships ``/usr/share/sip-tester/g711a.pcap``, 7 s of PCMA); every call's RTP leaves from the
one ``[media_port]`` (``-mp``); ``<exec play_dtmf="1#"/>`` sends RFC 2833 events with
payload type 96 (and "no-op" packets with 97) and runs beside the scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

import pytest

from integrations.speech.audio import mulaw_encode, resample_pcm16
from simulator.ports import free_rtp_port, free_udp_port

SCENARIOS = Path(__file__).resolve().parents[1] / "sip"
"""The scenario XML files (``tests/sip/*.xml``)."""

START_ATTEMPTS = 3
"""Times :meth:`Sipp.start` tries before it gives up."""

SIPP_SKIP = "SIPp tests need sipp (apt-get install sip-tester; scripts/test.sh installs it)"


def sipp_binary() -> str:
    """The ``sipp`` executable, or skip the test."""
    path = shutil.which("sipp")
    if path is None:
        pytest.skip(SIPP_SKIP)
    return path


def udp_port_bound(host: str, port: int) -> bool:
    """Someone holds ``host:port`` (a bind there fails)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
        return False


def write_ulaw(wav: Path, out: Path) -> Path:
    """Convert a mono 16-bit WAV to the headerless 8 kHz mu-law file ``rtp_stream`` plays."""
    with wave.open(str(wav), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{wav}: need mono 16-bit PCM")
        pcm = resample_pcm16(w.readframes(w.getnframes()), w.getframerate(), 8000)
    out.write_bytes(mulaw_encode(pcm))
    return out


@dataclass(frozen=True)
class SipMessage:
    """One SIP message SIPp sent or received (from its ``-trace_msg`` log)."""

    direction: Literal["sent", "received"]
    text: str

    @property
    def first_line(self) -> str:
        """The request or status line."""
        return self.text.split("\n", 1)[0].strip()

    @property
    def status(self) -> int | None:
        """The status code of a response (None for a request)."""
        m = re.match(r"SIP/2\.0 (\d{3})", self.first_line)
        return int(m.group(1)) if m else None

    @property
    def method(self) -> str | None:
        """The method of a request (None for a response)."""
        if self.first_line.startswith("SIP/2.0"):
            return None
        return self.first_line.split(" ", 1)[0]

    @property
    def body(self) -> str:
        """The body (SDP, sipfrag) after the blank line."""
        parts = re.split(r"\r?\n\r?\n", self.text, maxsplit=1)
        return parts[1] if len(parts) > 1 else ""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        head = re.split(r"\r?\n\r?\n", self.text, maxsplit=1)[0]
        for line in head.splitlines()[1:]:
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() == name.lower():
                return value.strip()
        return None


_MSG_START = re.compile(
    r"^(?:UDP|TCP|TLS|SCTP) message (sent|received) (?:\[\d+\] bytes|\(\d+ bytes\)) ?:\s*$", re.M
)
_SEPARATOR = re.compile(r"^-{20,} .*$", re.M)


def parse_messages(log: str) -> list[SipMessage]:
    """The messages in a SIPp ``-trace_msg`` file, in order."""
    out: list[SipMessage] = []
    for block in _SEPARATOR.split(log):
        m = _MSG_START.search(block)
        if not m:
            continue
        direction: Literal["sent", "received"] = "sent" if m.group(1) == "sent" else "received"
        text = block[m.end() :].lstrip("\r\n").rstrip() + "\n"
        out.append(SipMessage(direction, text))
    return out


def parse_stat_counts(csv_text: str) -> tuple[int, int]:
    """(successful, failed) cumulative calls from the last row of a ``-trace_stat`` CSV."""
    rows = [r for r in csv_text.splitlines() if r.strip()]
    if len(rows) < 2:
        return 0, 0
    names = rows[0].split(";")
    last = rows[-1].split(";")
    values = dict(zip(names, last, strict=False))
    return int(values.get("SuccessfulCall(C)", 0) or 0), int(values.get("FailedCall(C)", 0) or 0)


@dataclass
class SippResult:
    """How one SIPp run went.

    Parameters:
        exit_code: SIPp's exit status (0 all calls succeeded, 1 some failed, 97 stopped by
            command, 99 no call processed, 255 fatal error, 254 could not bind; negative:
            killed by that signal, e.g. by the harness's own timeout).
        successful: Calls that ran the scenario to its end.
        failed: Calls that failed (unexpected message, timeout, failed check, ...).
        messages: Every SIP message sent and received, in order.
        errors: SIPp's error log (unexpected messages, failed checks).
        output: SIPp's stdout and stderr.
    """

    exit_code: int
    successful: int
    failed: int
    messages: list[SipMessage] = field(default_factory=list[SipMessage])
    errors: str = ""
    output: str = ""

    def received(self, what: str | int) -> list[SipMessage]:
        """Received requests with method ``what`` or responses with status ``what``."""
        return [m for m in self.messages if m.direction == "received" and _is(m, what)]

    def sent(self, what: str | int) -> list[SipMessage]:
        """Sent requests with method ``what`` or responses with status ``what``."""
        return [m for m in self.messages if m.direction == "sent" and _is(m, what)]

    def assert_ok(self, calls: int = 1) -> None:
        """Assert SIPp exited 0 with ``calls`` successful calls and none failed."""
        got = (self.exit_code, self.successful, self.failed)
        assert got == (0, calls, 0), self.explain()

    def explain(self) -> str:
        """A short account for assertion messages."""
        lines = [m.direction + ": " + m.first_line for m in self.messages]
        return (
            f"sipp exit {self.exit_code}, {self.successful} ok, {self.failed} failed\n"
            + "\n".join(lines[-40:])
            + ("\nerrors:\n" + self.errors[-3000:] if self.errors.strip() else "")
            + ("\noutput:\n" + self.output[-2000:] if self.exit_code not in (0, 1) else "")
        )


def _is(message: SipMessage, what: str | int) -> bool:
    return message.status == what if isinstance(what, int) else message.method == what


class Sipp:
    """One SIPp process running a scenario from ``tests/sip/`` (async).

    Use ``async with Sipp(...) as sipp`` for a peer that runs beside the test (a UAS, a
    transfer target) and read ``await sipp.wait()``; or :func:`run_sipp` for a UAC run
    to its end. The process listens on ``127.0.0.1:port`` (a free port unless given) and
    sends its RTP from ``media_port``.

    Args:
        scenario: A file name under ``tests/sip/`` or a path.
        remote: ``host:port`` to send to (a UAC); None for a UAS.
        calls: Stop after this many calls (``-m``).
        concurrent: At most this many calls at once (``-l``); ``calls`` by default.
        rate: New calls per second (``-r``).
        timeout_s: SIPp's global timeout (``-timeout``, counted as a failure); the harness
            kills the process 5 s after it.
        keys: ``-key`` values for ``[name]`` keywords in the scenario.
        fill: Values for ``{{name}}`` placeholders, written into a copy of the scenario
            before SIPp loads it (for what ``-key`` cannot set: a status line's code is
            checked at load time, ``exec`` attributes are not expanded).
        service: The Request-URI's user part (``-s``).
        auth: (username, password) for ``[authentication]`` (``-au``/``-ap``).
        audio_wav: A WAV to stream (written as ``caller.ulaw`` in the working directory).
        audio_pcap: An RTP capture for ``play_pcap_audio`` (copied as ``audio.pcap``).
        port: The SIP port (free one if None).
        media_port: The RTP port (free pair if None).
        extra_args: More SIPp options.
        workdir: Where SIPp runs and writes its logs (a temporary directory if None).
    """

    def __init__(
        self,
        scenario: str | Path,
        *,
        remote: str | None = None,
        calls: int = 1,
        concurrent: int | None = None,
        rate: float = 10.0,
        timeout_s: float = 15.0,
        keys: Mapping[str, str] | None = None,
        fill: Mapping[str, str] | None = None,
        service: str = "agent",
        auth: tuple[str, str] | None = None,
        audio_wav: Path | None = None,
        audio_pcap: Path | None = None,
        port: int | None = None,
        media_port: int | None = None,
        extra_args: Sequence[str] = (),
        workdir: Path | None = None,
    ) -> None:
        self.binary = sipp_binary()
        path = Path(scenario)
        self.scenario = path if path.is_absolute() else SCENARIOS / path
        if not self.scenario.exists():
            raise FileNotFoundError(self.scenario)
        self.host = "127.0.0.1"
        self._fixed_ports = (port, media_port)
        self.port = port or free_udp_port()
        self.media_port = media_port or free_rtp_port()
        self.remote = remote
        self.timeout_s = timeout_s
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sipp-")
            workdir = Path(self._tmp.name)
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        if fill:
            text = self.scenario.read_text()
            for name, value in fill.items():
                text = text.replace("{{" + name + "}}", value)
            if "{{" in text:
                raise ValueError(f"{self.scenario.name}: placeholders left unfilled")
            self.scenario = self.workdir / self.scenario.name
            self.scenario.write_text(text)
        if audio_wav is not None:
            write_ulaw(audio_wav, self.workdir / "caller.ulaw")
        if audio_pcap is not None:
            shutil.copyfile(audio_pcap, self.workdir / "audio.pcap")
        if not (self.workdir / "caller.ulaw").exists():
            (self.workdir / "caller.ulaw").write_bytes(b"\xff" * 8000)  # 1 s of silence
        self._keys = dict(keys or {})
        self._auth = auth
        self._extra_args = list(extra_args)
        self._calls, self._concurrent, self._rate, self._service = calls, concurrent, rate, service
        self.args = self._command()
        self._proc: asyncio.subprocess.Process | None = None
        self._result: SippResult | None = None

    def _command(self) -> list[str]:
        """SIPp's command line for the current ports."""
        calls, concurrent, rate, service = self._calls, self._concurrent, self._rate, self._service
        remote, timeout_s = self.remote, self.timeout_s
        args = [
            self.binary,
            *(["-sf", str(self.scenario)]),
            *([remote] if remote else []),
            *("-i", self.host, "-p", str(self.port), "-mi", self.host, "-mp", str(self.media_port)),
            *("-m", str(calls), "-l", str(concurrent or calls), "-r", f"{rate:g}"),
            *("-s", service, "-nostdin", "-timeout", f"{timeout_s:g}s", "-timeout_error"),
            *("-trace_stat", "-stf", "stat.csv", "-fd", "1"),
            *("-trace_msg", "-message_file", "messages.log"),
            *("-trace_err", "-error_file", "errors.log"),
            *("-trace_screen", "-screen_file", "screen.log"),
            *("-max_invite_retrans", "3", "-max_non_invite_retrans", "3"),
        ]
        for name, value in self._keys.items():
            args += ["-key", name, value]
        if self._auth:
            args += ["-au", self._auth[0], "-ap", self._auth[1]]
        return args + self._extra_args

    @property
    def address(self) -> str:
        """``host:port`` this SIPp listens on (for a UAC's target or a Refer-To)."""
        return f"{self.host}:{self.port}"

    def uri(self, user: str = "agent") -> str:
        """A ``sip:`` URI reaching this SIPp."""
        return f"sip:{user}@{self.address}"

    def messages_so_far(self) -> list[SipMessage]:
        """The messages SIPp has logged up to now (while it runs)."""
        log = self.workdir / "messages.log"
        return parse_messages(log.read_text(errors="replace")) if log.exists() else []

    def popen(self) -> subprocess.Popen[bytes]:
        """Start SIPp outside any event loop (a module-scoped fixture's peer); end it with
        ``send_signal(SIGINT)``; read what it saw with :meth:`messages_so_far`."""
        log = (self.workdir / "output.log").open("wb")
        try:
            return subprocess.Popen(
                self.args,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TERM": "dumb"},
            )
        finally:
            log.close()

    async def start(self) -> Sipp:
        """Start SIPp and wait until it holds its SIP port.

        SIPp that cannot bind (a port taken between choosing it and binding it: exit 254 or
        255, or a peer that exits before any call) is started again on other free ports, up
        to :data:`START_ATTEMPTS` times; then this raises with SIPp's output rather than
        letting the test call a peer that is not there (a CI run once timed out so). A UAC
        (``remote``) that has already run its calls to their end is not a failure.
        """
        failure = ""
        for _ in range(START_ATTEMPTS):
            proc = await asyncio.create_subprocess_exec(
                *self.args,
                cwd=self.workdir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, "TERM": "dumb"},
            )
            self._proc = proc
            for _ in range(500):  # 10 s: on a loaded 2-core CI machine 2 s was once not enough
                if proc.returncode is not None or udp_port_bound(self.host, self.port):
                    break
                await asyncio.sleep(0.02)
            if self.remote is None and proc.returncode is None:
                await asyncio.sleep(0.1)  # a UAS that bound SIP but not its media port exits
            if proc.returncode is None and udp_port_bound(self.host, self.port):
                return self
            if self.remote is not None and proc.returncode not in (None, 254, 255):
                return self  # a UAC whose calls ended already: wait() collects them
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            out, _ = await proc.communicate()
            failure = f"exit {proc.returncode}: {out.decode(errors='replace')[-1500:]}"
            if self._fixed_ports != (None, None):
                break
            self.port, self.media_port = free_udp_port(), free_rtp_port()
            self.args = self._command()
        raise RuntimeError(f"SIPp did not start ({self.scenario.name}): {failure}")

    async def wait(self) -> SippResult:
        """Wait for SIPp to end (its timeout, plus 5 s before the harness kills it)."""
        if self._result is not None:
            return self._result
        proc = self._proc
        if proc is None:
            raise RuntimeError("SIPp was not started")
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), self.timeout_s + 5)
        except TimeoutError:
            proc.kill()
            out, _ = await proc.communicate()
        self._result = self._collect(proc.returncode or 0, out.decode(errors="replace"))
        return self._result

    async def stop(self) -> SippResult:
        """End SIPp now (calls still live are abandoned; killed if it lingers) and collect."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            # SIGUSR1 is SIPp's "q": no new calls, quit when the live ones end; SIGINT quits
            # at once (the message log is complete, calls still live count as neither).
            for sig, grace_s in ((signal.SIGUSR1, 0.5), (signal.SIGINT, 2.0)):
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
                try:
                    await asyncio.wait_for(proc.wait(), grace_s)
                    break
                except TimeoutError:
                    continue
            else:
                proc.kill()
        return await self.wait()

    def _collect(self, code: int, output: str) -> SippResult:
        def read(name: str) -> str:
            p = self.workdir / name
            return p.read_text(errors="replace") if p.exists() else ""

        ok, failed = parse_stat_counts(read("stat.csv"))
        return SippResult(
            exit_code=code,
            successful=ok,
            failed=failed,
            messages=parse_messages(read("messages.log")),
            errors=read("errors.log"),
            output=output,
        )

    async def __aenter__(self) -> Sipp:
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


async def run_sipp(scenario: str | Path, remote: str, **kwargs: object) -> SippResult:
    """Run a UAC scenario against ``remote`` (``host:port``) to its end; see :class:`Sipp`."""
    sipp = Sipp(scenario, remote=remote, **kwargs)  # type: ignore[arg-type]
    try:
        await sipp.start()
        return await sipp.wait()
    finally:
        if sipp._tmp is not None:  # noqa: SLF001 - the harness's own temporary directory
            sipp._tmp.cleanup()  # noqa: SLF001
