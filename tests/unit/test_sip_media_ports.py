"""The RTP port range is not leaked when a call's media cannot be opened."""

from __future__ import annotations

import pytest
from aiortp import PortAllocator

from simulator.ports import free_rtp_port
from transports.sip import media as media_module
from transports.sip.media import RtpMedia


async def test_a_failed_session_gives_its_port_back(monkeypatch: pytest.MonkeyPatch) -> None:
    base = free_rtp_port()
    allocator = PortAllocator((base, base + 2))

    async def broken(*_args: object, **_kwargs: object) -> object:
        raise ValueError("the RTP session could not start")

    monkeypatch.setattr(media_module._PeerOnlySession, "create", broken)
    with pytest.raises(ValueError):
        await RtpMedia.open(
            call_id="c1",
            bind_host="127.0.0.1",
            allocator=allocator,
            remote=("127.0.0.1", 40000),
            payload_type=0,
            dtmf_payload_type=101,
        )
    monkeypatch.undo()
    media = await RtpMedia.open(  # the one port of the range is free again
        call_id="c2",
        bind_host="127.0.0.1",
        allocator=allocator,
        remote=("127.0.0.1", 40000),
        payload_type=0,
        dtmf_payload_type=101,
    )
    await media.close()
