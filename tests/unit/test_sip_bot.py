"""The SIP trunk in the bot: its settings, which INVITEs are answered, the REFER transfer.

The endpoint and the transport have their own tests (``test_sip_endpoint*``,
``test_sip_transport*``); a whole call over SIP from a real softphone is
``tests/e2e/test_e2e_sip_call.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
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
            {"CALLAGENT_SIP_LISTEN": "localhost:5060"},
            "CALLAGENT_SIP_LISTEN=localhost:5060",
            "IP address",
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
        (  # the transport choice does not open a public port without a gate
            {"CALLAGENT_TRANSPORT": "sip", "CALLAGENT_SIP_LISTEN": "192.0.2.1:5060"},
            "CALLAGENT_SIP_TRUNKS",
            "anyone can call",
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


def test_transport_sip_turns_sip_on_beside_the_built_in_page() -> None:
    settings = Settings.load({"CALLAGENT_TRANSPORT": "SIP"})
    assert settings.sip_enabled and settings.sip_listen == "127.0.0.1:5060"
    assert settings.transport == "webrtc"  # the browser page stays served
    chosen = Settings.load({"CALLAGENT_TRANSPORT": "sip", "CALLAGENT_SIP_LISTEN": "127.0.0.1:5070"})
    assert chosen.sip_listen_address == ("127.0.0.1", 5070)


def test_sip_listen_beside_another_transport_serves_both() -> None:
    settings = Settings.load(
        {"CALLAGENT_TRANSPORT": "webrtc", "CALLAGENT_SIP_LISTEN": "127.0.0.1:5070"}
    )
    assert settings.sip_enabled and settings.transport == "webrtc"
    assert not Settings.load({"CALLAGENT_TRANSPORT": "webrtc"}).sip_enabled


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


# -- the SIP endpoint in the server -----------------------------------------------------


class FakeEndpoint:
    """Stands in for ``SipEndpoint``: one port per "host" (``taken``), the handler kept."""

    def __init__(self, taken: set[str], settings: Settings, handler, admission) -> None:
        self.taken, self.address = taken, settings.sip_listen
        self.handler, self.admission = handler, admission
        self.stopped = False

    async def start(self) -> None:
        if self.address in self.taken:
            raise OSError(98, "Address already in use")
        self.taken.add(self.address)

    async def stop(self) -> None:
        self.stopped = True
        self.taken.discard(self.address)


def make_app(data_dir, agent, endpoints: list[FakeEndpoint], taken: set[str], **env: str):
    """The server's app with no speech models and a fake SIP endpoint (the wiring under test)."""
    from bot.call.runtime import Runtime
    from bot.web.app import create_app
    from integrations.nlu.entities import EntityExtractor
    from tests.fakes.classifier import ScriptedClassifier
    from tests.fakes.speech import ScriptedRecognizer, ScriptedSynthesizer

    settings = Settings.load(
        {
            "CALLAGENT_DATA_DIR": str(data_dir),
            "CALLAGENT_CRM": "none",
            "CALLAGENT_SIP_LISTEN": "127.0.0.1:5099",
            **env,
        }
    )
    speech = ScriptedRecognizer("hello"), ScriptedSynthesizer(sample_rate=8000)
    runtime = Runtime(settings, agent, *speech, ScriptedClassifier(), EntityExtractor(), None)

    def factory(settings, handler, admission):
        endpoints.append(FakeEndpoint(taken, settings, handler, admission))
        return endpoints[-1]

    return create_app(settings, runtime, sip_endpoint=factory)


async def readyz(app) -> dict:
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return (await client.get("/readyz")).json()


async def wait_for(condition, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_sip_call_runs_like_a_twilio_call_and_leaves_a_record(data_dir, agent) -> None:
    from tests.fakes.sip_call import FakeSipCall

    endpoints: list[FakeEndpoint] = []
    app = make_app(data_dir, agent, endpoints, set(), CALLAGENT_MAX_CALLS="1")
    runtime = app.state.runtime
    async with app.router.lifespan_context(app):
        endpoint = endpoints[0]
        assert (await readyz(app))["sip"] == {
            "role": "serving",
            "listen": "127.0.0.1:5099",
            "calls": 0,
        }
        call = FakeSipCall("sip-call-1@pbx")
        assert endpoint.admission(call.invite) is None  # the INVITE takes the one slot
        busy = endpoint.admission(invite("another"))
        assert busy is not None and busy.status == 486
        handling = asyncio.create_task(endpoint.handler(call))
        await wait_for(lambda: len(runtime.live) == 1)
        live = runtime.live.all()[0]
        assert (live.transport_kind, live.provider_call_id) == ("sip", "sip-call-1@pbx")
        ready = await readyz(app)
        assert ready["sip"]["calls"] == 1 and ready["slots_in_use"] == 1 and not ready["ready"]
        call.peer_hangs_up()  # the caller's BYE ends the pipeline and the record
        await asyncio.wait_for(handling, 10)
        assert len(runtime.live) == 0 and app.state.admission.in_use == 0
    assert endpoint.stopped
    await asyncio.to_thread(runtime.records.store.flush)
    record = runtime.records.store.get_call(live.call_id)
    assert record is not None
    assert (record["transport"], record["direction"]) == ("sip", "inbound")
    assert record["provider_call_id"] == "sip-call-1@pbx"
    assert record["ended_at"]  # closed, not left open


async def test_while_draining_an_invite_gets_503_with_retry_after(data_dir, agent) -> None:
    endpoints: list[FakeEndpoint] = []
    app = make_app(data_dir, agent, endpoints, set())
    async with app.router.lifespan_context(app):
        app.state.admission.stop_admitting()  # what the drain does first
        refusal = endpoints[0].admission(invite("late"))
        assert refusal is not None and refusal.status == 503 and refusal.retry_after_s


async def test_one_worker_serves_sip_and_a_sibling_takes_over_when_it_stops(
    data_dir, agent
) -> None:
    taken: set[str] = set()
    first, second = [], []
    a = make_app(data_dir / "a", agent, first, taken, CALLAGENT_WORKERS="2")
    b = make_app(data_dir / "b", agent, second, taken, CALLAGENT_WORKERS="2")
    b.state.sip._rebind_s = 0.05
    async with contextlib.AsyncExitStack() as b_running:
        async with contextlib.AsyncExitStack() as a_running:
            await a_running.enter_async_context(a.router.lifespan_context(a))
            await b_running.enter_async_context(b.router.lifespan_context(b))
            assert (await readyz(a))["sip"]["role"] == "serving"  # a bound first
            assert (await readyz(b))["sip"]["role"] == "standby"  # b stands by
        # a stopped (recycled, crashed): b takes the port over
        await wait_for(lambda: b.state.sip.role == "serving")
        assert (await readyz(b))["sip"]["role"] == "serving"


async def test_alone_a_taken_sip_port_stops_the_server(data_dir, agent) -> None:
    app = make_app(data_dir, agent, [], {"127.0.0.1:5099"})
    with pytest.raises(OSError):
        async with app.router.lifespan_context(app):
            pass


def test_without_sip_readyz_says_nothing_of_it(data_dir, agent) -> None:
    from fastapi.testclient import TestClient

    app = make_app(data_dir, agent, [], set(), CALLAGENT_SIP_LISTEN="")
    with TestClient(app, base_url="http://127.0.0.1:7860") as client:
        assert "sip" not in client.get("/readyz").json()


async def test_a_sip_call_transfers_by_refer_to_the_agent_files_target(agent) -> None:
    import dataclasses

    from bot.call.handoff import make_handoff_processors
    from bot.call.runtime import Runtime
    from integrations.nlu.entities import EntityExtractor
    from tests.fakes.classifier import ScriptedClassifier
    from tests.fakes.sip_call import FakeSipCall
    from transports.sip.transport import SipTransport

    desk = dataclasses.replace(
        agent, transfer=dataclasses.replace(agent.transfer, target="sip:desk@pbx")
    )
    runtime = Runtime(
        Settings.load({}), desk, None, None, ScriptedClassifier(), EntityExtractor(), None
    )
    call = FakeSipCall()
    processors = make_handoff_processors(
        runtime,
        call_id="c1",
        transport_kind="sip",
        caller=None,
        transport=SipTransport(call),
        context=None,
    )
    method = processors.transfer._method  # pyright: ignore[reportPrivateUsage]
    assert isinstance(method, SipRefer) and method._target == "sip:desk@pbx"  # pyright: ignore[reportPrivateUsage]
    call.media.send_pcm(b"\0\0" * 800)  # 100 ms queued: the hand-off line waits for it
    clock = processors.transfer._playout_remaining  # pyright: ignore[reportPrivateUsage]
    assert clock is not None and clock() == call.media.queued_s > 0


def test_the_sip_socket_hears_datagrams_on_uvloop_too() -> None:
    """uvicorn runs ``callagent serve`` on uvloop, where aiosipua's own protocol hears nothing."""
    import socket

    import uvloop

    from transports.sip.wire import GuardedUdpTransport

    async def main() -> int:
        heard: list[object] = []
        transport = GuardedUdpTransport(local_addr=("127.0.0.1", 0))
        transport.on_message = lambda message, addr: heard.append(message)
        await transport.start()
        assert transport._udp_transport is not None  # pyright: ignore[reportPrivateUsage]
        port = transport._udp_transport.get_extra_info("sockname")[1]  # pyright: ignore[reportPrivateUsage]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind(("127.0.0.1", 0))
            via = f"SIP/2.0/UDP 127.0.0.1:{peer.getsockname()[1]};branch=z9hG4bK1"
            peer.sendto(
                (
                    f"OPTIONS sip:agent@127.0.0.1 SIP/2.0\r\nVia: {via}\r\n"
                    "From: <sip:pbx@127.0.0.1>;tag=1\r\nTo: <sip:agent@127.0.0.1>\r\n"
                    "Call-ID: uvloop-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                    "Content-Length: 0\r\n\r\n"
                ).encode(),
                ("127.0.0.1", port),
            )
            for _ in range(100):
                if heard:
                    break
                await asyncio.sleep(0.01)
        await transport.stop()
        return len(heard)

    assert uvloop.run(main()) == 1


# -- a transfer by REFER through the whole server, to real SIP peers --------------------


@pytest.mark.parametrize(
    ("target_scenario", "transferred"), [("uas_answer.xml", True), ("uas_busy.xml", False)]
)
async def test_the_server_refers_a_sip_caller_to_the_agent_files_target(
    data_dir, agent, target_scenario: str, transferred: bool
) -> None:
    """SIPp calls the server, the drain hands the call to a person (``when_stopping:
    transfer``): REFER to ``transfer.target`` (a second SIPp), the result recorded, and on a
    busy target the failure line and the callback offer said, as after a Twilio transfer."""
    import dataclasses

    from bot.call.runtime import Runtime
    from bot.web.app import create_app
    from bot.web.drain import Drain
    from integrations.nlu.entities import EntityExtractor
    from simulator.ports import free_rtp_port, free_udp_port
    from tests.fakes.classifier import ScriptedClassifier
    from tests.fakes.speech import ScriptedRecognizer, ScriptedSynthesizer
    from tests.support.sipp import Sipp

    async with Sipp(target_scenario) as target:
        person = target.uri("person")
        desk = dataclasses.replace(
            agent, transfer=dataclasses.replace(agent.transfer, target=person)
        )
        sip_port, rtp = free_udp_port(), free_rtp_port()
        settings = Settings.load(
            {
                "CALLAGENT_DATA_DIR": str(data_dir),
                "CALLAGENT_CRM": "none",
                "CALLAGENT_SIP_LISTEN": f"127.0.0.1:{sip_port}",
                "CALLAGENT_SIP_RTP_PORTS": f"{rtp}-{rtp + 9}",
            }
        )
        synthesizer = ScriptedSynthesizer(sample_rate=8000)
        runtime = Runtime(
            settings,
            desk,
            ScriptedRecognizer("hello"),
            synthesizer,
            ScriptedClassifier(),
            EntityExtractor(),
            None,
        )
        app = create_app(settings, runtime)  # the real SIP endpoint
        async with app.router.lifespan_context(app):
            caller = Sipp("uac_refer.xml", remote=f"127.0.0.1:{sip_port}", extra_args=["-d", "500"])
            await caller.start()
            await wait_for(lambda: len(runtime.live) == 1, timeout_s=10)
            call_id = runtime.live.all()[0].call_id
            drain = Drain(
                app.state.admission,
                runtime,
                lambda: app.state.calls.active,
                drain_secs=0.0,
                end_grace_s=15.0,
            )
            await drain.run()  # hands the call off (REFER); over when the caller leaves
            result = await caller.wait()
            reached = await target.wait()
        assert (result.exit_code, reached.exit_code) == (0, 0), result.explain()
        refer = result.received("REFER")[0]
        assert person.removeprefix("sip:") in (refer.header("Refer-To") or "")
        assert app.state.admission.in_use == 0
        records = runtime.records
        assert records is not None
        await asyncio.to_thread(records.store.flush)
        record = records.store.get_call(call_id)
        assert record is not None and record["transport"] == "sip"
        escalation = record["escalation"]
        assert escalation is not None
        spoken = " ".join(synthesizer.texts)
        if transferred:
            assert escalation["transfer_result"] == "transferred"
            assert agent.transfer.callback_offer not in spoken
        else:
            assert escalation["transfer_result"].startswith("failed: SIP REFER 486")
            assert agent.transfer.failure_line in spoken and agent.transfer.callback_offer in spoken
