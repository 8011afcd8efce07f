"""The SIP trunk in the bot: its settings, which INVITEs are answered, the REFER transfer.

The endpoint and the transport have their own tests (``test_sip_endpoint*``,
``test_sip_transport*``); a whole call over SIP from a real softphone is
``tests/e2e/test_e2e_sip_call.py``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from pipecat.frames.frames import BotStartedSpeakingFrame, BotStoppedSpeakingFrame, TTSSpeakFrame
from pipecat.tests.utils import SleepFrame, run_test

from bot.settings import Settings, SettingsError
from bot.web.admission import LocalAdmission
from bot.web.sip_admission import SipCallAdmission
from processors.frames import EscalationFrame, TransferResultFrame
from processors.transfer import SipRefer, TransferProcessor
from transports.sip.contracts import InviteInfo, ReferOutcome

# -- settings ---------------------------------------------------------------------------


def test_sip_is_off_by_default_and_parsed_when_set() -> None:
    assert not Settings.load({}).sip_enabled
    s = Settings.load(
        {
            "CALLAGENT_SIP_LISTEN": "0.0.0.0:5070",
            "CALLAGENT_SIP_ADVERTISED_IP": "203.0.113.7",
            "CALLAGENT_SIP_RTP_PORTS": "30000-30100",
            "CALLAGENT_SIP_TRUNKS": "198.51.100.0/24, 10.0.0.5",
        }
    )
    assert s.sip_enabled and s.sip_listen_address == ("0.0.0.0", 5070)
    assert s.sip_advertised_host == "203.0.113.7"
    assert s.sip_rtp_port_range == (30000, 30100)
    assert [str(n) for n in s.sip_trunk_networks] == ["198.51.100.0/24", "10.0.0.5/32"]
    loopback = Settings.load({"CALLAGENT_SIP_LISTEN": "127.0.0.1:5070"})
    assert loopback.sip_advertised_host == "127.0.0.1"  # a loopback test needs nothing else


@pytest.mark.parametrize(
    ("env", "named", "fix"),
    [
        ({"CALLAGENT_SIP_LISTEN": "5060"}, "CALLAGENT_SIP_LISTEN=5060", "host:port"),
        ({"CALLAGENT_SIP_LISTEN": "127.0.0.1:99999"}, "CALLAGENT_SIP_LISTEN", "host:port"),
        (
            {"CALLAGENT_SIP_LISTEN": "0.0.0.0:5060", "CALLAGENT_SIP_TRUNKS": "10.0.0.1"},
            "CALLAGENT_SIP_ADVERTISED_IP",
            "peers reach",
        ),
        (
            {"CALLAGENT_SIP_LISTEN": "127.0.0.1:5060", "CALLAGENT_SIP_ADVERTISED_IP": "pbx"},
            "CALLAGENT_SIP_ADVERTISED_IP=pbx",
            "not an IP address",
        ),
        (
            {"CALLAGENT_SIP_LISTEN": "127.0.0.1:5060", "CALLAGENT_SIP_RTP_PORTS": "20000"},
            "CALLAGENT_SIP_RTP_PORTS=20000",
            "low-high",
        ),
        (
            {"CALLAGENT_SIP_LISTEN": "127.0.0.1:5060", "CALLAGENT_SIP_RTP_PORTS": "80-90"},
            "CALLAGENT_SIP_RTP_PORTS",
            "1024",
        ),
        (
            {"CALLAGENT_SIP_LISTEN": "127.0.0.1:5060", "CALLAGENT_SIP_TRUNKS": "pbx.example"},
            "CALLAGENT_SIP_TRUNKS",
            "not an address or network",
        ),
        (
            {"CALLAGENT_SIP_LISTEN": "127.0.0.1:5060", "CALLAGENT_SIP_USERNAME": "agent"},
            "CALLAGENT_SIP_PASSWORD",
            "set both",
        ),
        (
            {"CALLAGENT_SIP_LISTEN": "127.0.0.1:5060", "CALLAGENT_SIP_REGISTRAR": "pbx:5060"},
            "CALLAGENT_SIP_REGISTRAR",
            "CALLAGENT_SIP_USERNAME",
        ),
        (  # open to the world: anyone could call on the owner's bill
            {"CALLAGENT_SIP_LISTEN": "192.0.2.1:5060"},
            "CALLAGENT_SIP_TRUNKS",
            "anyone can call",
        ),
    ],
)
def test_bad_sip_settings_name_the_setting_and_the_fix(
    env: dict[str, str], named: str, fix: str
) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.load(env)
    assert named in str(info.value) and fix in str(info.value)


def test_the_sip_password_never_appears_in_an_error() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.load({"CALLAGENT_SIP_LISTEN": "bad", "CALLAGENT_SIP_PASSWORD": "hunter2-secret"})
    assert "hunter2-secret" not in str(info.value)


def test_env_example_lists_the_sip_settings() -> None:
    example = Settings.example_env()
    for name in (
        "CALLAGENT_SIP_LISTEN",
        "CALLAGENT_SIP_ADVERTISED_IP",
        "CALLAGENT_SIP_RTP_PORTS",
        "CALLAGENT_SIP_TRUNKS",
        "CALLAGENT_SIP_USERNAME",
        "CALLAGENT_SIP_PASSWORD",
        "CALLAGENT_SIP_REGISTRAR",
        "CALLAGENT_SIP_OUTBOUND_PROXY",
        "CALLAGENT_SIP_CALLER_ID",
    ):
        assert f"# {name}=" in example


# -- admission --------------------------------------------------------------------------


def invite(call_id: str) -> InviteInfo:
    return InviteInfo(call_id, ("10.0.0.5", 5060), caller="+15550100", callee="agent")


async def test_invites_past_the_cap_get_486_and_a_held_slot_goes_to_the_call() -> None:
    cap = LocalAdmission(2, 30, 10)
    sip = SipCallAdmission(cap)
    assert sip(invite("a")) is None and sip(invite("b")) is None
    busy = sip(invite("c"))
    assert busy is not None and (busy.status, busy.retry_after_s) == (486, None)
    assert cap.in_use == 2 and sip.pending == 2
    slot = sip.take("a")  # the call started: it holds the slot now
    assert slot is not None and sip.pending == 1 and cap.in_use == 2
    slot.release()  # the call ended
    assert cap.in_use == 1
    assert sip(invite("d")) is None
    assert cap.stats()["refused"] == {"sip": {"capacity": 1}}


async def test_a_repeated_invite_holds_one_slot() -> None:
    cap = LocalAdmission(2, 30, 10)
    sip = SipCallAdmission(cap)
    assert sip(invite("a")) is None and sip(invite("a")) is None
    assert cap.in_use == 1


async def test_while_draining_invites_get_503_with_retry_after() -> None:
    cap = LocalAdmission(5, 30, 10)
    sip = SipCallAdmission(cap)
    cap.stop_admitting()
    refusal = sip(invite("a"))
    assert refusal is not None and refusal.status == 503
    assert refusal.retry_after_s is not None and refusal.retry_after_s >= 1
    assert cap.in_use == 0


async def test_an_invite_never_established_gives_its_slot_back() -> None:
    cap = LocalAdmission(1, 30, 10)
    sip = SipCallAdmission(cap, pending_s=0.05)
    assert sip(invite("a")) is None  # then 488, CANCEL or no ACK: handler never runs
    assert cap.in_use == 1
    await asyncio.sleep(0.2)
    assert cap.in_use == 0 and sip.pending == 0 and sip.take("a") is None


def test_no_rate_limit_applies_to_the_trunk() -> None:
    cap = LocalAdmission(100, 1, 1)  # one call a minute per client on the web routes
    sip = SipCallAdmission(cap)
    assert all(sip(invite(str(i))) is None for i in range(5))  # one PBX carries them all


# -- the REFER transfer -----------------------------------------------------------------


@dataclass
class Referrer:
    """A SipCall's ``refer`` as the transfer sees it."""

    outcome: ReferOutcome | None = None
    targets: list[tuple[str, float]] | None = None

    async def refer(self, target: str, *, timeout_s: float = 30.0) -> ReferOutcome:
        self.targets = [*(self.targets or []), (target, timeout_s)]
        if self.outcome is None:
            raise ConnectionError("the dialog is gone")
        return self.outcome


def escalation() -> EscalationFrame:
    return EscalationFrame(trigger="explicit_request", reason="asked", summary={"reason": "x"})


LINE = [SleepFrame(0.02), BotStartedSpeakingFrame(), SleepFrame(0.05), BotStoppedSpeakingFrame()]


async def test_an_accepted_refer_is_recorded_as_transferred(agent) -> None:
    referrer = Referrer(ReferOutcome(True, 200))
    method = SipRefer(referrer.refer, "sip:desk@pbx.example", timeout_s=35.0)
    transfer = TransferProcessor(method, agent.transfer, call_id="s1")
    down, up = await run_test(transfer, frames_to_send=[escalation(), *LINE, SleepFrame(0.8)])
    assert referrer.targets == [("sip:desk@pbx.example", 35.0)]
    result = next(f for f in down if isinstance(f, TransferResultFrame))
    assert (result.ok, result.transfer_result, result.method) == (True, "transferred", "sip_refer")
    assert not [f for f in down if isinstance(f, TTSSpeakFrame)]  # no failure line
    assert [f.ok for f in up if isinstance(f, TransferResultFrame)] == [True]


@pytest.mark.parametrize(
    ("outcome", "error"),
    [
        (ReferOutcome(False, 486, "Busy Here"), "SIP REFER 486: Busy Here"),
        (ReferOutcome(False, 603), "SIP REFER 603"),
        (ReferOutcome(False, 0, "no NOTIFY"), "SIP REFER unanswered: no NOTIFY"),
        (None, "SIP REFER failed (ConnectionError)"),
    ],
)
async def test_a_failed_refer_says_so_offers_a_callback_and_is_recorded(
    agent, outcome: ReferOutcome | None, error: str
) -> None:
    method = SipRefer(Referrer(outcome).refer, "+15550199", timeout_s=35.0)
    transfer = TransferProcessor(method, agent.transfer, call_id="s1")
    down, up = await run_test(transfer, frames_to_send=[escalation(), *LINE, SleepFrame(0.8)])
    result = next(f for f in down if isinstance(f, TransferResultFrame))
    assert not result.ok and result.error == error and result.transfer_result == f"failed: {error}"
    spoken = " ".join(f.text for f in down if isinstance(f, TTSSpeakFrame))
    assert agent.transfer.failure_line in spoken and agent.transfer.callback_offer in spoken
    # upstream, the callback-offer processor arms on it (as after a failed Twilio transfer)
    assert [f.ok for f in up if isinstance(f, TransferResultFrame)] == [False]
