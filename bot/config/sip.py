"""The SIP trunk: where the agent listens for INVITEs, who may call it, how it registers.

Empty ``CALLAGENT_SIP_LISTEN`` (the default) means no SIP: the server takes Twilio and
browser calls only. Set, the SIP endpoint runs beside the web server in ``callagent serve``
(``bot/web/sip_server.py``).
"""

from __future__ import annotations

import ipaddress

from pydantic import Field
from pydantic_settings import BaseSettings

from bot.setting_types import Secret

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


class SipSettings(BaseSettings):
    """The SIP trunk: where the agent listens for INVITEs, who may call it, how it registers."""

    sip_listen: str = Field(
        default="",
        validation_alias="CALLAGENT_SIP_LISTEN",
        description=(
            "host:port the SIP endpoint listens on (UDP), e.g. 0.0.0.0:5060; empty = no SIP "
            "(Twilio and browser calls only)."
        ),
    )
    sip_advertised_ip: str = Field(
        default="",
        validation_alias="CALLAGENT_SIP_ADVERTISED_IP",
        description=(
            "The address peers reach us at, written in Contact/Via and the SDP (the public IP "
            "behind NAT); empty = the CALLAGENT_SIP_LISTEN host (which must not be 0.0.0.0 then)."
        ),
    )
    sip_rtp_ports: str = Field(
        default="10000-20000",
        validation_alias="CALLAGENT_SIP_RTP_PORTS",
        description="UDP port range for the calls' RTP audio (low-high, two ports per call).",
    )
    sip_trunks: str = Field(
        default="",
        validation_alias="CALLAGENT_SIP_TRUNKS",
        description=(
            "Comma-separated source addresses/networks (e.g. 203.0.113.0/24,10.0.0.5) allowed "
            "to send INVITEs (others get 403); empty = any source that passes digest auth."
        ),
    )
    sip_username: str = Field(
        default="",
        validation_alias="CALLAGENT_SIP_USERNAME",
        description=(
            "Digest username: INVITEs must authenticate with it (401 challenge; not when "
            "CALLAGENT_SIP_REGISTRAR and CALLAGENT_SIP_TRUNKS are both set: a carrier's INVITEs "
            "are trusted by source), and REGISTER to CALLAGENT_SIP_REGISTRAR uses it."
        ),
    )
    sip_password: Secret = Field(
        default="",
        validation_alias="CALLAGENT_SIP_PASSWORD",
        description="Digest password for CALLAGENT_SIP_USERNAME.",
    )
    sip_registrar: str = Field(
        default="",
        validation_alias="CALLAGENT_SIP_REGISTRAR",
        description=(
            "Registrar to REGISTER with (host[:port] or sip: URI), kept alive; empty = no "
            "registration (the trunk sends INVITEs to CALLAGENT_SIP_LISTEN)."
        ),
    )
    sip_outbound_proxy: str = Field(
        default="",
        validation_alias="CALLAGENT_SIP_OUTBOUND_PROXY",
        description=(
            "host[:port] outbound INVITEs (campaigns, callagent call) are sent to; empty = "
            "the registrar, else the callee URI's host."
        ),
    )
    sip_caller_id: str = Field(
        default="",
        validation_alias="CALLAGENT_SIP_CALLER_ID",
        description="Caller id (number or sip: URI) in the From of outbound INVITEs.",
    )

    @property
    def sip_enabled(self) -> bool:
        """Whether the SIP endpoint runs (``CALLAGENT_SIP_LISTEN`` is set)."""
        return bool(self.sip_listen)

    @property
    def sip_listen_address(self) -> tuple[str, int]:
        """``CALLAGENT_SIP_LISTEN`` as (host, port) (checked at load)."""
        return split_host_port(self.sip_listen)

    @property
    def sip_rtp_port_range(self) -> tuple[int, int]:
        """``CALLAGENT_SIP_RTP_PORTS`` as (low, high), both included (checked at load)."""
        low, _, high = self.sip_rtp_ports.partition("-")
        return int(low), int(high)

    @property
    def sip_trunk_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """``CALLAGENT_SIP_TRUNKS`` as networks (empty: any source)."""
        return [
            ipaddress.ip_network(item, strict=False)
            for item in filter(None, (i.strip() for i in self.sip_trunks.split(",")))
        ]

    @property
    def sip_advertised_host(self) -> str:
        """The address written in Contact/Via/SDP: the advertised IP, else the listen host."""
        return self.sip_advertised_ip or self.sip_listen_address[0]


def split_host_port(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) as (host, port).

    Raises:
        ValueError: no port, or a port that is not a number.
    """
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError("expected host:port")
    return host.strip("[]"), int(port)


def sip_problems(s: SipSettings) -> list[str]:
    """Check the SIP settings together; one line per problem naming the setting and the fix."""
    if not s.sip_enabled:
        return []
    p: list[str] = []
    try:
        host, port = s.sip_listen_address
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        return [f"CALLAGENT_SIP_LISTEN={s.sip_listen}: use host:port, e.g. 0.0.0.0:5060."]
    if s.sip_advertised_ip:
        try:
            ipaddress.ip_address(s.sip_advertised_ip)
        except ValueError:
            p.append(
                f"CALLAGENT_SIP_ADVERTISED_IP={s.sip_advertised_ip}: not an IP address "
                "(e.g. 203.0.113.7, the address the trunk reaches this host at)."
            )
    elif host in WILDCARD_HOSTS:
        p.append(
            f"CALLAGENT_SIP_LISTEN={s.sip_listen} listens on every address: set "
            "CALLAGENT_SIP_ADVERTISED_IP to the one peers reach (it goes in Contact and the SDP)."
        )
    low, sep, high = s.sip_rtp_ports.partition("-")
    if not (sep and low.strip().isdigit() and high.strip().isdigit()) or not (
        1024 <= int(low) < int(high) <= 65535
    ):
        p.append(
            f"CALLAGENT_SIP_RTP_PORTS={s.sip_rtp_ports}: use low-high between 1024 and 65535 "
            "(e.g. 10000-20000)."
        )
    for item in filter(None, (i.strip() for i in s.sip_trunks.split(","))):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            p.append(
                f"CALLAGENT_SIP_TRUNKS: {item!r} is not an address or network "
                "(e.g. 203.0.113.0/24,10.0.0.5)."
            )
    if bool(s.sip_username) != bool(s.sip_password):
        p.append(
            "CALLAGENT_SIP_USERNAME and CALLAGENT_SIP_PASSWORD go together: set both or neither."
        )
    if s.sip_registrar and not s.sip_username:
        p.append(
            "CALLAGENT_SIP_REGISTRAR needs CALLAGENT_SIP_USERNAME and CALLAGENT_SIP_PASSWORD "
            "(the registrar's digest credentials)."
        )
    if host not in LOOPBACK_HOSTS and not (s.sip_trunks or s.sip_username):
        p.append(
            f"CALLAGENT_SIP_LISTEN={s.sip_listen} is reachable from other hosts: set "
            "CALLAGENT_SIP_TRUNKS (the PBX's addresses) or CALLAGENT_SIP_USERNAME/PASSWORD "
            "(digest), else anyone can call the agent on your bill."
        )
    return p
