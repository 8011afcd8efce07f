"""Helpers for browser call tests: a private network namespace, the server and Chromium.

WebRTC between a local server and a local Chromium needs a shared address that both
ICE stacks accept: aioice never offers 127.0.0.1 and Chromium drops loopback
candidates unless told otherwise. A network namespace with ``lo`` up and a second
loopback address (127.0.0.2) gives aioice an address it offers, and
``--allow-loopback-in-peer-connection`` lets Chromium use it. Both the server and
Chromium run inside the namespace, so the call never leaves it. Needs root (``ip
netns``) and Debian's ``chromium``, ``flite`` and ``sox``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
REPO_ROOT = Path(__file__).resolve().parents[2]
NETNS_ADDRESS = "127.0.0.2/8"
NETNS_PREFIX = "callagent-test-"


def missing_tools() -> list[str]:
    """The tools a browser call test needs that this machine lacks."""
    missing = [] if Path(CHROMIUM).exists() else [f"{CHROMIUM} (apt-get install chromium)"]
    missing += [f"{t} (apt-get install {t})" for t in ("flite", "sox") if not shutil.which(t)]
    if not shutil.which("ip"):
        missing.append("ip (apt-get install iproute2)")
    return missing


def make_caller_wav(
    path: Path, text: str, *, lead_silence_s: float, tail_silence_s: float = 3.0
) -> Path:
    """Speak ``text`` with flite's "slt" voice into a 48 kHz mono WAV Chromium can capture.

    Args:
        path: Where to write the WAV.
        text: What the caller says.
        lead_silence_s: Silence before the speech (lets the bot's greeting finish).
        tail_silence_s: Silence after it (lets the bot detect the end of the turn).

    Returns:
        ``path``.
    """
    raw = path.with_suffix(".flite.wav")
    subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(raw)], check=True)
    subprocess.run(
        [
            "sox",
            str(raw),
            "-r",
            "48000",
            "-c",
            "1",
            "-b",
            "16",
            str(path),
            "norm",
            "-3",
            "pad",
            str(lead_silence_s),
            str(tail_silence_s),
        ],
        check=True,
    )
    raw.unlink()
    return path


def remove_stale_namespaces() -> None:
    """Delete namespaces left behind by test runs whose process no longer exists."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    for line in listing.stdout.splitlines():
        name = line.split(" ", 1)[0]
        match = re.fullmatch(rf"{NETNS_PREFIX}(\d+)-[0-9a-f]+", name)
        if match and not _process_exists(int(match.group(1))):
            subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class NetNamespace:
    """A throwaway network namespace with loopback up and 127.0.0.2 on ``lo``."""

    def __init__(self) -> None:
        self.name = f"{NETNS_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"

    def prefix(self) -> list[str]:
        """The command prefix that runs a program inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def __enter__(self) -> NetNamespace:
        remove_stale_namespaces()
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        try:
            for cmd in (
                ["ip", "link", "set", "lo", "up"],
                ["ip", "addr", "add", NETNS_ADDRESS, "dev", "lo"],
            ):
                subprocess.run(self.prefix() + cmd, check=True, capture_output=True)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Delete the namespace (processes still inside keep it alive until they exit)."""
        subprocess.run(["ip", "netns", "delete", self.name], check=False, capture_output=True)

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chromium_wrapper(self, directory: Path) -> Path:
        """A script Playwright can launch as Chromium that runs it inside the namespace.

        ``ip netns exec`` keeps open file descriptors, so Playwright's
        ``--remote-debugging-pipe`` (fds 3 and 4) still reaches the browser.
        """
        script = directory / "chromium-in-netns"
        script.write_text(f'#!/bin/sh\nexec ip netns exec {self.name} {CHROMIUM} "$@"\n')
        script.chmod(0o755)
        return script

    def can_reach(self, url: str) -> bool:
        """Whether an HTTP GET of ``url`` from inside the namespace answers 200."""
        probe = f"import urllib.request as u; u.urlopen({url!r}, timeout=2).read()"
        result = subprocess.run(
            self.prefix() + [sys.executable, "-c", probe], capture_output=True, check=False
        )
        return result.returncode == 0


SERVE = """
import os, uvicorn
from bot.web.app import create_app
from bot.settings import Settings
settings = Settings.load()
uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
"""


class AppServer:
    """The real app (``bot.web.app.create_app``) served inside a namespace, logging to a file."""

    def __init__(
        self, netns: NetNamespace, env: Mapping[str, str], log_path: Path, *, port: int = 7860
    ) -> None:
        self.netns = netns
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._env = dict(env)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 300.0) -> None:
        """Start the server and wait until ``/healthz`` answers.

        Raises:
            RuntimeError: If the server exits or is not up within ``timeout_s``.
        """
        env = {**os.environ, **self._env, "PORT": str(self.port), "CALLAGENT_HOST": "127.0.0.1"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        cmd = self.netns.prefix() + [sys.executable, "-c", SERVE]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                cmd, env=env, cwd=self.log_path.parent, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"the server exited ({self._process.returncode}):\n{self.log_tail()}"
                )
            if self.netns.can_reach(self.url + "/healthz"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"the server was not up after {timeout_s:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the server: SIGINT, then SIGKILL if it does not exit."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def log_tail(self, lines: int = 60) -> str:
        """The end of the server's log."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> AppServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def chromium_args(fake_mic_wav: Path) -> list[str]:
    """Chromium flags for a headless call with ``fake_mic_wav`` as the microphone."""
    return [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_mic_wav.resolve()}%noloop",
        "--allow-loopback-in-peer-connection",
        "--autoplay-policy=no-user-gesture-required",
    ]
