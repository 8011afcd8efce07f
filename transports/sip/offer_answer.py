"""SDP offer/answer for the endpoint's G.711 calls (RFC 3264 on top of aiosipua's SDP model).

Only PCMU (0) and PCMA (8) at 8 kHz and 20 ms are spoken, with RFC 4733 telephone-events at
the offerer's payload type. Every SDP we send in a dialog carries the same ``o=`` session id
and a version one higher than the last (RFC 3264 §8), which aiosipua's builders do not track.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from aiosipua import SdpMessage, build_sdp, negotiate_sdp
from aiosipua.sdp import Codec, _extract_codecs

from transports.sip.media import SUPPORTED_PAYLOAD_TYPES

DEFAULT_DTMF_PT = 101
_NAMES = {0: "PCMU", 8: "PCMA"}
_HOLD_ADDRESSES = ("0.0.0.0", "::")


class NoCommonCodec(ValueError):
    """The offer has no PCMU/PCMA audio (answered 488)."""


@dataclass(frozen=True)
class MediaChoice:
    """What an offer (or answer) settled: the codec, the DTMF payload type, the peer's RTP.

    Parameters:
        payload_type: 0 (PCMU) or 8 (PCMA).
        dtmf_payload_type: The telephone-event payload type (``DEFAULT_DTMF_PT`` if none).
        remote: The peer's RTP (ip, port).
        held: The peer's SDP puts the call on hold (sendonly, inactive or 0.0.0.0).
    """

    payload_type: int
    dtmf_payload_type: int
    remote: tuple[str, int]
    held: bool


@dataclass
class SdpVersions:
    """One dialog's ``o=`` session id and version counter."""

    session_id: str = field(default_factory=lambda: str(random.randint(10**6, 10**9)))
    version: int = 0

    def stamp(self, sdp: SdpMessage) -> SdpMessage:
        """Give ``sdp`` this dialog's session id and the next version."""
        self.version += 1
        sdp.origin.session_id = self.session_id
        sdp.origin.session_version = str(self.version)
        sdp.origin.username = "callagent"
        return sdp


def _telephone_event(codecs: list[Codec]) -> int | None:
    for codec in codecs:
        if codec.encoding_name.lower() == "telephone-event":
            return codec.payload_type
    return None


def read_media(
    sdp: SdpMessage, *, allowed: tuple[int, ...] = SUPPORTED_PAYLOAD_TYPES
) -> MediaChoice:
    """The first offered G.711 codec we speak, the DTMF type, the peer's address, hold.

    Raises:
        NoCommonCodec: No audio, no address, or no PCMU/PCMA among ``allowed``.
    """
    audio = sdp.audio
    address = sdp.rtp_address
    if audio is None or address is None or audio.port == 0:
        raise NoCommonCodec("no audio stream")
    chosen: int | None = None
    for codec in audio.codecs:
        name_ok = codec.encoding_name.upper() == _NAMES.get(codec.payload_type)
        if codec.payload_type in allowed and name_ok and codec.clock_rate in (0, 8000):
            chosen = codec.payload_type
            break
    if chosen is None:
        raise NoCommonCodec("no PCMU/PCMA")
    dtmf = _telephone_event(audio.codecs)
    held = audio.direction in ("sendonly", "inactive") or address[0] in _HOLD_ADDRESSES
    return MediaChoice(chosen, dtmf if dtmf is not None else DEFAULT_DTMF_PT, address, held)


def build_answer(
    offer: SdpMessage, *, ip: str, port: int, choice: MediaChoice, versions: SdpVersions
) -> SdpMessage:
    """Our answer: the chosen codec, telephone-events if offered, the mirrored direction."""
    answer, _ = negotiate_sdp(
        offer=offer,
        local_ip=ip,
        rtp_port=port,
        supported_codecs=[choice.payload_type],
        # aiosipua answers telephone-event at 101 whatever the offer said; echo the offer's
        dtmf_payload_type=choice.dtmf_payload_type,
        ptime=20,
    )
    return versions.stamp(answer)


def build_offer(*, ip: str, port: int, versions: SdpVersions) -> SdpMessage:
    """Our offer for an outbound call: PCMU, PCMA and telephone-event, 20 ms, sendrecv."""
    offer = build_sdp(ip, port, 0, "PCMU", dtmf_payload_type=DEFAULT_DTMF_PT, ptime=20)
    audio = offer.audio
    assert audio is not None
    audio.formats.insert(1, "8")
    audio.attributes["rtpmap"].insert(1, "8 PCMA/8000")
    audio.codecs = _extract_codecs(audio)
    return versions.stamp(offer)
