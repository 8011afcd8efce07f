"""The SIP endpoint's plain configuration (filled from settings by ``bot/``; read nowhere else)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SipEndpointConfig:
    """Where the endpoint listens, what it advertises, who may call and how it calls out.

    Parameters:
        listen_host: The address the UDP SIP socket binds.
        listen_port: The UDP port (0 = any free port; see ``SipEndpoint.local_addr``).
        advertised_ip: The IP written in Via/Contact and SDP (the public address behind NAT);
            empty = ``listen_host`` (or 127.0.0.1 when that is a wildcard).
        rtp_ports: The (first, last) UDP ports RTP may use, inclusive.
        trunks: Source CIDRs allowed to send INVITEs (empty = any source).
        username: Digest user (inbound challenge and REGISTER / outbound auth); empty = no digest.
        password: Digest password.
        realm: The realm of the inbound digest challenge.
        challenge_inbound: Challenge INVITEs with 401 when a username is set. Turn it off when
            the credentials are only ours towards the carrier (REGISTER, outbound INVITEs) and
            the carrier's INVITEs are trusted by source (``trunks``): carriers do not answer
            challenges.
        registrar: ``host[:port]`` to REGISTER at (empty = no registration).
        register_expires_s: The binding interval asked for.
        outbound_proxy: ``host[:port]`` outbound INVITEs are sent to (empty = the registrar, else
            the To URI's host).
        caller_id: The From user of outbound calls (a number; never logged).
        session_expires_s: RFC 4028 session interval offered/accepted (0 = no session timers).
        session_min_se_s: The smallest session interval accepted (422 below it).
        rtp_timeout_s: End a call (not on hold) after this long without RTP (0 = never).
        max_message_bytes: Datagrams larger than this are dropped unread.
        user_agent: The User-Agent header.
    """

    listen_host: str = "127.0.0.1"
    listen_port: int = 5060
    advertised_ip: str = ""
    rtp_ports: tuple[int, int] = (20000, 20999)
    trunks: tuple[str, ...] = ()
    username: str = ""
    password: str = field(default="", repr=False)
    realm: str = "callagent"
    challenge_inbound: bool = True
    registrar: str = ""
    register_expires_s: int = 300
    outbound_proxy: str = ""
    caller_id: str = field(default="", repr=False)
    session_expires_s: int = 1800
    session_min_se_s: int = 90
    rtp_timeout_s: float = 60.0
    max_message_bytes: int = 8192
    user_agent: str = "callagent"

    @property
    def sdp_ip(self) -> str:
        """The address peers should send RTP and SIP to."""
        if self.advertised_ip:
            return self.advertised_ip
        if self.listen_host in ("", "0.0.0.0", "::"):
            return "127.0.0.1"
        return self.listen_host


def parse_hostport(value: str, default_port: int = 5060) -> tuple[str, int]:
    """``"host[:port]"`` (or ``"sip:host:port"``) -> (host, port).

    Raises:
        ValueError: When the port is not a number.
    """
    text = value.strip()
    if text.lower().startswith("sip:"):
        text = text[4:]
    text = text.split(";", 1)[0].rsplit("@", 1)[-1]
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    host, sep, port = text.partition(":")
    return host, int(port) if sep else default_port


def uri_user(uri: str) -> str:
    """The user part of a SIP URI (``<sip:+15551234@host>`` -> ``+15551234``; "" if none).

    Caller data: never log it.
    """
    text = uri.strip().strip("<>")
    text = text.split(":", 1)[1] if ":" in text else text
    return text.split("@", 1)[0] if "@" in text else ""
