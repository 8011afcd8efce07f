"""The SIP endpoint's logs carry Call-IDs and statuses, never numbers, URI users or digits."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from aiosipua import SipDigestAuth, build_sdp
from loguru import logger

from tests.support.sip_audio import tone
from tests.support.sip_uac import Bot, SipPeer, offer_sdp, start_endpoint, until

CALLER, CALLEE, DIALLED, TARGET = "15550001111", "agentline77", "15550002222", "15550009999"


@pytest.fixture
def logs() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG")
    yield lines
    logger.remove(sink)


async def test_no_caller_data_in_the_logs(
    logs: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # aiosipua and aiortp log through the standard library
    peer = await SipPeer().start()
    bot = Bot(greeting=tone(0.2))
    endpoint = await start_endpoint(bot, username="trunk", password="s3")
    try:
        port = await peer.open_rtp()
        outgoing = peer.invite(
            endpoint.local_addr,
            offer_sdp(port),
            user=CALLEE,
            caller=CALLER,
            auth=SipDigestAuth("trunk", "s3"),
        )
        await outgoing.wait_answered(10)
        answer = outgoing.sdp_answer
        assert answer is not None and answer.rtp_address is not None and peer.rtp is not None
        peer.rtp.update_remote(answer.rtp_address)
        await until(lambda: len(bot.calls) == 1)
        peer.rtp.send_dtmf("8")
        await until(lambda: bot.digits == ["8"])
        await bot.calls[0].refer(TARGET, timeout_s=0.3)
        outgoing.hangup(peer.uac)
        await until(lambda: bot.calls[0].ended)

        peer.on_invite = lambda incoming: incoming.accept(build_sdp("127.0.0.1", port, 0, "PCMU"))
        host, sip_port = peer.transport.local_addr
        call = await endpoint.dial(f"sip:{DIALLED}@{host}:{sip_port}", timeout_s=10)
        await call.hang_up()
    finally:
        await endpoint.stop()
        await peer.close()
    text = "\n".join([*logs, *(record.getMessage() for record in caplog.records)])
    assert "sip: call answered" in text  # the logs were captured
    for secret in (CALLER, CALLEE, DIALLED, TARGET, "s3"):
        assert secret not in text
