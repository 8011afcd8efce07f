"""Free loopback ports for the agent, its peers and the simulator's phones (tests use them too).

A port found free here can be taken before it is bound (the usual race of this method): the
callers bind it at once, and the tests that start servers on it retry or skip clearly.
"""

from __future__ import annotations

import random
import socket


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` nobody is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port on ``host`` nobody is bound to right now (e.g. a SIP endpoint's)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_rtp_port(host: str = "127.0.0.1", low: int = 30000, high: int = 60000) -> int:
    """An even UDP port with the odd one above it free too (RTP and its RTCP), on ``host``.

    Raises:
        OSError: No such pair was found in ``[low, high)``.
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(low, high, 2)
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtcp,
        ):
            try:
                rtp.bind((host, port))
                rtcp.bind((host, port + 1))
            except OSError:
                continue
            return port
    raise OSError("no free RTP port pair")
