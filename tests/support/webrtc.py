"""A real browser-like SDP offer for the signalling tests."""

from __future__ import annotations


async def browser_offer_sdp() -> str:
    """An SDP offer with an audio section (aiortc's), from a peer that is gone at once."""
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp
