"""Outbound calls over the SIP trunk: the real server and SIP endpoint, SIPp as the callee.

The server (``bot.web.app.create_app`` on a loopback port, ``tests/support/outbound_server``)
runs its SIP endpoint on a free UDP port with ``CALLAGENT_SIP_OUTBOUND_PROXY`` pointing at a
SIPp callee (``tests/sip/``); only the call's pipeline is a stand-in (no models). Machine
detection with the real models is in ``tests/e2e/test_e2e_sip_outbound.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pipecat.observers.base_observer import FramePushed
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from bot.call.outbound import verdict_strategies
from bot.outbound.agents import default_agent_key
from bot.outbound.dialer import DialError
from bot.outbound.server import attempt_tokens
from bot.outbound.sip_dialer import SipDialer, sip_disposition, sip_failure_retryable
from bot.outbound.tokens import AttemptTokens
from integrations.outbound.dispositions import Disposition
from integrations.outbound.store import Attempt
from processors.frames import MachineVerdictFrame
from processors.machine_verdict import (
    BeepVerdict,
    ProviderVerdict,
    SpeechTimingVerdict,
    WordsVerdict,
)
from processors.outbound_outcome import OutboundOutcomeObserver
from simulator.ports import free_rtp_port, free_udp_port
from tests.support.outbound_server import (
    BEARER,
    CALLEE,
    OUR_NUMBER,
    OutboundServer,
    OutboundServers,
)
from tests.support.sipp import Sipp

END_TIMEOUT_S = 20.0
REMINDERS = Path(__file__).resolve().parents[2] / "bot" / "agents" / "appointment_reminders.yaml"


@pytest.mark.parametrize(
    ("status", "disposition", "retryable"),
    [
        (486, Disposition.BUSY, False),
        (600, Disposition.BUSY, False),
        (480, Disposition.NO_ANSWER, False),
        (408, Disposition.NO_ANSWER, False),
        (487, Disposition.NO_ANSWER, False),
        (404, Disposition.FAILED, False),
        (484, Disposition.FAILED, False),
        (604, Disposition.FAILED, False),
        (603, Disposition.FAILED, False),
        (503, Disposition.FAILED, True),
    ],
)
def test_sip_final_responses_are_dispositions(
    status: int, disposition: Disposition, retryable: bool
) -> None:
    end = sip_disposition(status)
    assert (end.disposition, end.retryable) == (disposition, retryable)


def test_only_lost_dials_and_sip_503s_are_retried_as_failures() -> None:
    assert sip_failure_retryable("sip", None)
    assert sip_failure_retryable("sip", 503)
    assert not sip_failure_retryable("sip", 404)
    assert not sip_failure_retryable("twilio", 503)  # Twilio's codes were retried already


@pytest.fixture
async def servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    started = OutboundServers(tmp_path, monkeypatch)
    yield started
    await started.close()


def sip_env(callee: Sipp) -> dict[str, str]:
    """The server's SIP settings: its own free port, INVITEs to ``callee``."""
    rtp = free_rtp_port()
    return {
        "CALLAGENT_SIP_LISTEN": f"127.0.0.1:{free_udp_port()}",
        "CALLAGENT_SIP_RTP_PORTS": f"{rtp}-{rtp + 40}",
        "CALLAGENT_SIP_OUTBOUND_PROXY": callee.address,
        "CALLAGENT_SIP_CALLER_ID": OUR_NUMBER,
    }


async def new_attempt(server: OutboundServer, channel: str) -> Attempt:
    """A single call's attempt written on ``channel`` (not claimed)."""
    attempts = server.app.state.outbound.attempts
    return await attempts.new(
        agent=default_agent_key(server.runtime), to=CALLEE, variables={}, channel=channel
    )


async def ended(server: OutboundServer, attempt_id: str) -> dict[str, Any]:
    """The attempt once it has ended."""
    async with asyncio.timeout(END_TIMEOUT_S):
        while True:
            attempt = await server.attempt(attempt_id)
            if attempt["state"] == "ended":
                return attempt
            await asyncio.sleep(0.1)


async def test_a_busy_callee_ends_the_attempt_busy(servers: OutboundServers) -> None:
    async with Sipp("uas_busy.xml", timeout_s=20) as callee:
        server = await servers.start(None, **sip_env(callee))
        response = await server.place(channel="sip")
        assert response.status_code == 201, response.text
        placed = response.json()
        assert placed["provider_call_id"].startswith("sipdial-")
        attempt = await ended(server, placed["attempt_id"])
        result = await callee.stop()
    assert attempt["disposition"] == "busy"
    assert attempt["error_code"] == 486
    assert attempt["channel"] == "sip"
    assert [a.id for a in server.ended.attempts] == [placed["attempt_id"]]  # told once
    invite = result.received("INVITE")[0]
    assert invite.first_line.startswith(f"INVITE sip:{CALLEE}@{callee.address}")
    assert f"sip:{OUR_NUMBER}@" in (invite.header("From") or "")  # the caller id


async def test_an_answered_call_runs_the_attempts_outbound_pipeline(
    servers: OutboundServers,
) -> None:
    fill = {"hangup_ms": "1500"}
    async with Sipp("uas_outbound_callee.xml", fill=fill, timeout_s=20) as callee:
        server = await servers.start(None, **sip_env(callee))
        response = await server.place(channel="sip", variables={"first_name": "Maria"})
        assert response.status_code == 201, response.text
        attempt = await ended(server, response.json()["attempt_id"])
        result = await callee.wait()
    assert result.successful == 1, result.explain()
    assert attempt["disposition"] == "completed"  # the callee hung up; nothing was decided
    assert attempt["answered_at"] is not None
    [spec] = server.specs
    assert spec.transport_kind == "sip"
    assert spec.direction == "outbound"
    assert spec.outbound is not None and spec.outbound.attempt_id == attempt["id"]
    assert spec.outbound.variables == {"first_name": "Maria"}
    call_id = result.received("INVITE")[0].header("Call-ID")
    assert spec.provider_call_id == call_id  # the record's provider id: the SIP Call-ID
    assert attempt["call_id"] == spec.call_id


async def test_a_campaign_worker_dials_through_the_route_with_the_attempts_token(
    servers: OutboundServers,
) -> None:
    async with Sipp("uas_busy.xml", timeout_s=20) as callee:
        server = await servers.start(None, **sip_env(callee))
        attempts = server.app.state.outbound.attempts
        attempt = await new_attempt(server, "sip")
        assert await attempts.claim(attempt.id)  # as the campaign runner claims it
        worker = SipDialer(attempt_tokens(server.runtime.settings), server.base_url)
        dialled = await worker.dial(attempt, "")
        assert dialled.provider_call_id.startswith("sipdial-")
        with pytest.raises(DialError) as again:  # the same token replayed: dialled once
            await worker.dial(attempt, "")
        assert (again.value.code, again.value.retryable) == (409, False)
        done = await ended(server, attempt.id)
        result = await callee.stop()
    assert done["disposition"] == "busy"
    assert len(result.received("INVITE")) == 1


async def test_the_dial_route_wants_a_valid_token_for_a_claimed_sip_attempt(
    servers: OutboundServers,
) -> None:
    async with Sipp("uas_busy.xml", timeout_s=20) as callee:
        server = await servers.start(None, **sip_env(callee))
        twilio = await new_attempt(server, "twilio")
        sip = await new_attempt(server, "sip")
        tokens = attempt_tokens(server.runtime.settings)
        forged = AttemptTokens("another secret").issue(sip.id)

        async def dial(body: object) -> int:
            return (await server.client.post("/sip/dial", json=body)).status_code

        assert await dial({}) == 400
        assert await dial({"attempt": 5}) == 400
        assert await dial([sip.id]) == 400  # JSON, not an object

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read up to the limit
            for _ in range(64):
                yield b" " * 1024

        huge = await server.client.post("/sip/dial", content=chunks())
        assert huge.status_code == 413
        assert await dial({"attempt": forged}) == 403
        assert await dial({"attempt": tokens.issue("at_0123abcd")}) == 404
        assert await dial({"attempt": tokens.issue(twilio.id)}) == 409  # not a SIP attempt
        assert await dial({"attempt": tokens.issue(sip.id)}) == 409  # not claimed yet
        result = await callee.stop()
    assert result.received("INVITE") == []  # nothing was dialled


async def test_without_sip_the_dial_route_and_the_sip_channel_answer_503(
    servers: OutboundServers,
) -> None:
    server = await servers.start()
    attempts = server.app.state.outbound.attempts
    attempt = await new_attempt(server, "sip")
    assert await attempts.claim(attempt.id)
    token = attempt_tokens(server.runtime.settings).issue(attempt.id)
    response = await server.client.post("/sip/dial", json={"attempt": token})
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    placed = await server.place(channel="sip")
    assert placed.status_code == 503
    assert "CALLAGENT_SIP_LISTEN" in placed.json()["detail"]


async def test_a_campaign_on_the_sip_channel_dials_and_retries_through_the_trunk(
    servers: OutboundServers,
) -> None:
    async with Sipp("uas_busy.xml", calls=2, timeout_s=30) as callee:
        server = await servers.start(
            None,
            **sip_env(callee),
            CALLAGENT_CAMPAIGN_CHANNEL="sip",  # the server's own queue threads dial via /sip/dial
            CALLAGENT_AGENT_FILE=str(REMINDERS),
        )
        rules = {
            "windows": {"mon-sun": ["00:00-24:00"]},
            "timezone": "UTC",
            "retries": ["busy=1x1s"],
        }
        row = {"phone": CALLEE, "first_name": "Pat", "appointment": "Friday at 10 am"}
        created = await server.client.post(
            "/api/campaigns",
            json={"agent": "appointment_reminders", "rules": rules, "rows": [row]},
            headers=BEARER,
        )
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]

        async def completed() -> dict[str, Any]:
            got = await server.client.get(f"/api/campaigns/{campaign_id}", headers=BEARER)
            return got.json()

        async with asyncio.timeout(END_TIMEOUT_S * 2):
            while (campaign := await completed())["state"] != "completed":
                await asyncio.sleep(0.2)
        result = await callee.stop()
    assert campaign["progress"]["dispositions"] == {"busy": 1}
    assert len(result.received("INVITE")) == 2  # the first attempt and its retry
    ended = server.ended.attempts
    assert [(a.channel, a.disposition, a.error_code) for a in ended] == [("sip", "busy", 486)] * 2


def test_a_trunk_call_is_judged_by_the_agents_own_detection_alone() -> None:
    assert isinstance(verdict_strategies("twilio")[0], ProviderVerdict)  # AnsweredBy first
    own = verdict_strategies("sip")
    assert not any(isinstance(s, ProviderVerdict) for s in own)
    assert [type(s) for s in own] == [BeepVerdict, WordsVerdict, SpeechTimingVerdict]


class Updates:
    """What the observer tells the attempt."""

    def __init__(self) -> None:
        self.verdicts: list[str] = []

    async def outcome(self, disposition: str) -> None:
        pass

    async def do_not_call(self, reason: str) -> None:
        pass

    async def machine_verdict(self, verdict: str) -> None:
        self.verdicts.append(verdict)


async def test_the_calls_own_verdict_goes_to_the_attempt_the_providers_does_not() -> None:
    updates = Updates()
    observer = OutboundOutcomeObserver(call_id="c1", attempt=updates)
    source = FrameProcessor()
    for frame in (
        MachineVerdictFrame(verdict="machine", source="beep", decided_after_s=3.0),
        MachineVerdictFrame(verdict="human", source="provider"),  # its callback records it
    ):
        await observer.on_push_frame(
            FramePushed(
                source=source,
                destination=source,
                frame=frame,
                direction=FrameDirection.DOWNSTREAM,
                timestamp=0,
            )
        )
    await observer.cleanup()
    assert updates.verdicts == ["machine"]


async def test_nobody_picking_up_in_the_ring_time_is_no_answer(servers: OutboundServers) -> None:
    async with Sipp("uas_no_answer.xml", timeout_s=30) as callee:
        server = await servers.start(None, **sip_env(callee), CALLAGENT_OUTBOUND_RING_SECS="5")
        response = await server.place(channel="sip")
        assert response.status_code == 201, response.text
        attempt = await ended(server, response.json()["attempt_id"])
        result = await callee.stop()
    assert attempt["disposition"] == "no-answer"
    assert attempt["error_code"] == 408  # our own time-out
    assert result.received("CANCEL"), result.explain()  # the ringing was called off


async def test_a_server_stopping_while_it_rings_cancels_and_fails_the_attempt(
    servers: OutboundServers,
) -> None:
    async with Sipp("uas_no_answer.xml", timeout_s=30) as callee:
        server = await servers.start(None, **sip_env(callee))
        response = await server.place(channel="sip")
        assert response.status_code == 201, response.text
        attempt_id = response.json()["attempt_id"]
        await asyncio.sleep(0.5)  # ringing
        await servers.close()
        result = await callee.stop()
    attempt = await server.app.state.outbound.attempts.get(attempt_id)
    assert attempt is not None and attempt.ended
    assert (attempt.disposition, attempt.error_code) == ("failed", None)  # retried by a campaign
    assert result.received("CANCEL"), result.explain()


@pytest.mark.parametrize(
    ("status", "reason", "disposition"),
    [
        (480, "Temporarily Unavailable", "no-answer"),
        (404, "Not Found", "failed"),
        (503, "Service Unavailable", "failed"),
    ],
)
async def test_a_refusing_callee_ends_the_attempt_as_its_status_says(
    servers: OutboundServers, status: int, reason: str, disposition: str
) -> None:
    fill = {"status": str(status), "reason": reason}
    async with Sipp("uas_reject.xml", fill=fill, timeout_s=20) as callee:
        server = await servers.start(None, **sip_env(callee))
        response = await server.place(channel="sip")
        assert response.status_code == 201, response.text
        attempt = await ended(server, response.json()["attempt_id"])
        await callee.stop()
    assert (attempt["disposition"], attempt["error_code"]) == (disposition, status)
    [told] = server.ended.attempts
    assert sip_failure_retryable(told.channel, told.error_code) == (status == 503)


async def test_the_attempt_goes_ringing_on_the_callees_180(servers: OutboundServers) -> None:
    async with Sipp("uas_no_answer.xml", timeout_s=30) as callee:
        server = await servers.start(None, **sip_env(callee), CALLAGENT_OUTBOUND_RING_SECS="5")
        response = await server.place(channel="sip")
        assert response.status_code == 201, response.text
        attempt_id = response.json()["attempt_id"]
        states: list[str] = []
        async with asyncio.timeout(END_TIMEOUT_S):
            while not states or states[-1] != "ended":
                state = (await server.attempt(attempt_id))["state"]
                if not states or states[-1] != state:
                    states.append(state)
                await asyncio.sleep(0.05)
        attempt = await server.attempt(attempt_id)
        await callee.stop()
    assert "ringing" in states, states  # as Twilio's ringing status callback marks it
    assert states[-2:] == ["ringing", "ended"], states
    assert (attempt["disposition"], attempt["error_code"]) == ("no-answer", 408)
