"""Serving: readiness, the polite answer when full, the drain's refusals, the settings.

Against the server's real app (``create_app`` with a scripted classifier, no speech
models); the drain with live calls and the supervisor with real processes are in
``tests/e2e/test_e2e_serving.py`` and ``tests/unit/test_supervisor.py``.
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pipecat.tests.utils import run_test

from bot.agent import AgentFileError, load_agent
from bot.settings import Settings, SettingsError
from processors.agent_definition import WhenFullConfig
from processors.frames import EscalationFrame, HandOffNowFrame
from tests.support.frames import spoken

LOCAL = "http://127.0.0.1:7860"
QUEUE_LINE = "Every line is busy; let me find you a person."


def make_app(data_dir: Path, agent: Any, **env: str) -> FastAPI:
    from bot.call.runtime import Runtime
    from bot.web.app import create_app
    from integrations.nlu.entities import EntityExtractor
    from tests.fakes.classifier import ScriptedClassifier

    settings = Settings.load({"CALLAGENT_DATA_DIR": str(data_dir), "CALLAGENT_CRM": "none", **env})
    runtime = Runtime(settings, agent, None, None, ScriptedClassifier(), EntityExtractor(), None)
    return create_app(settings, runtime)


def test_readyz_reports_the_load_and_says_503_when_full(data_dir, agent) -> None:
    app = make_app(data_dir, agent, CALLAGENT_MAX_CALLS="2")
    with TestClient(app, base_url=LOCAL) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json().pop("process").count(":") == 2
        assert {k: v for k, v in ready.json().items() if k != "process"} == {
            "ready": True,
            "calls": 0,
            "slots_in_use": 0,
            "max_calls": 2,
            "draining": False,
            "load": 0.0,
        }
        slots = [app.state.admission.acquire("twilio-stream", "127.0.0.1") for _ in range(2)]
        full = client.get("/readyz")
        assert full.status_code == 503 and "Retry-After" in full.headers
        assert full.json()["load"] == 1.0 and full.json()["draining"] is False
        assert client.get("/healthz").status_code == 200  # liveness is another matter
        slots[0].release()
        assert client.get("/readyz").json()["load"] == 0.5
        slots[1].release()


def test_a_phone_call_past_the_cap_goes_to_the_queue_when_the_agent_says_so(
    data_dir, agent
) -> None:
    queueing = dataclasses.replace(agent, when_full=WhenFullConfig("queue", QUEUE_LINE))
    app = make_app(data_dir, queueing, CALLAGENT_MAX_CALLS="1")
    with TestClient(app, base_url=LOCAL) as client:
        slot = app.state.admission.acquire("twilio-stream", "127.0.0.1")
        answer = client.post("/twilio/voice", data={"CallSid": "CA1"})
        assert answer.status_code == 200
        assert f"<Say>{QUEUE_LINE}</Say>" in answer.text
        assert f"<Number>{agent.transfer.target}</Number>" in answer.text
        assert "<Stream" not in answer.text
        slot.release()
        assert "<Stream" in client.post("/twilio/voice", data={"CallSid": "CA2"}).text


def test_a_draining_server_refuses_new_calls_and_is_not_ready(data_dir, agent) -> None:
    app = make_app(data_dir, agent, CALLAGENT_DRAIN_SECS="5")
    with TestClient(app, base_url=LOCAL) as client:
        assert client.portal is not None
        client.portal.call(app.state.drain.run)  # no call is live: it ends at once
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["draining"] is True
        voice = client.post("/twilio/voice", data={"CallSid": "CA1"})
        assert '<Reject reason="busy" />' in voice.text  # the reference agent: reject
        refused = app.state.admission.stats()["refused"]
        assert refused == {"twilio-voice": {"draining": 1}}
        # a stream whose webhook was answered before the drain still gets its slot
        app.state.admission.acquire("twilio-stream", "127.0.0.1").release()


async def test_hand_off_now_escalates_with_the_hand_off_line(agent) -> None:
    from processors.escalation import EscalationProcessor

    escalation = EscalationProcessor(
        agent.escalation,
        handoff_line=agent.transfer.handoff_line,
        transfer_intents=frozenset({"talk_to_human"}),
        sentiment=None,
        call_id="t1",
    )
    down, _ = await run_test(escalation, frames_to_send=[HandOffNowFrame(reason="stopping")])
    [frame] = [f for f in down if isinstance(f, EscalationFrame)]
    assert frame.trigger == "server_stopping" and frame.reason == "stopping"
    assert frame.summary["reason_text"] == "the agent's server was shutting down"
    assert spoken(down) == [agent.transfer.handoff_line]


def test_when_full_queue_needs_a_transfer_target(tmp_path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(
        "name: x\ngreeting: hi\nintents:\n  a:\n    examples: [a, b]\n"
        "when_full:\n  action: queue\n  line: Busy.\n"
    )
    with pytest.raises(AgentFileError) as info:
        load_agent(path)
    assert f"{path}:6: when_full: action queue sends callers to transfer.target" in str(info.value)
    path.write_text(path.read_text().replace("queue", "hold"))
    with pytest.raises(AgentFileError, match=r":7: when_full.action: must be one of reject"):
        load_agent(path)


def test_several_workers_without_shared_state_refuse_to_start(data_dir, capsys) -> None:
    from bot.cli import main

    assert main(["serve", "--workers", "2"]) == 2
    assert "CALLAGENT_SHARED_STATE_URL" in capsys.readouterr().err
    with pytest.raises(SettingsError, match="CALLAGENT_DRAIN_SECS"):
        Settings.load({"CALLAGENT_DRAIN_SECS": "-1"})
    with pytest.raises(SettingsError, match="CALLAGENT_WORKERS"):
        Settings.load({"CALLAGENT_WORKERS": "0"})


def test_recycling_under_one_process_needs_shared_state_too(data_dir, monkeypatch, capsys) -> None:
    from bot.cli import main

    monkeypatch.setenv("CALLAGENT_RECYCLE_AFTER_CALLS", "500")
    assert main(["serve"]) == 2
    assert "CALLAGENT_SHARED_STATE_URL" in capsys.readouterr().err


def test_recycle_policy_reasons() -> None:
    from bot.serving.recycle import RecyclePolicy, resident_mb

    assert not RecyclePolicy().enabled and RecyclePolicy().reason(10**6) == ""
    assert "CALLAGENT_RECYCLE_AFTER_CALLS=3" in RecyclePolicy(after_calls=3).reason(3)
    assert RecyclePolicy(after_calls=3).reason(2) == ""
    assert "MB" in RecyclePolicy(after_mb=1).reason(0)  # this process uses more than 1 MB
    assert resident_mb() > 1


class _Worker:
    """A call's pipeline worker whose frames end the call (or whose queue is broken)."""

    def __init__(self, calls: set[str], call_id: str, broken: bool = False) -> None:
        self.calls, self.call_id, self.broken = calls, call_id, broken
        self.frames: list[Any] = []

    async def queue_frames(self, frames: list[Any]) -> None:
        if self.broken:
            raise RuntimeError("the pipeline is gone")
        self.frames.extend(frames)
        self.calls.discard(self.call_id)

    async def queue_frame(self, frame: Any) -> None:
        await self.queue_frames([frame])


async def test_a_call_that_cannot_be_ended_does_not_stop_the_drain_ending_the_others(
    data_dir, agent
) -> None:
    from typing import cast

    from bot.call.live_calls import LiveCall
    from bot.web.drain import Drain

    goodbye = dataclasses.replace(agent, transfer=dataclasses.replace(agent.transfer, target=""))
    app = make_app(data_dir, goodbye)
    runtime = app.state.runtime
    running = {"broken", "fine"}
    workers = {cid: _Worker(running, cid, broken=cid == "broken") for cid in sorted(running)}
    for call_id, worker in workers.items():
        runtime.live.add(
            LiveCall(call_id, None, "webrtc", None, cast(Any, None), cast(Any, worker))
        )
    drain = Drain(
        app.state.admission,
        runtime,
        lambda: len(running),
        drain_secs=0.0,
        end_grace_s=0.5,
    )
    await drain.run()
    assert running == {"broken"}  # the broken one is left to the shutdown's cancel
    assert [type(f).__name__ for f in workers["fine"].frames] == ["TTSSpeakFrame", "EndWorkerFrame"]


def test_a_worker_weighs_the_load_thresholds_against_the_host_not_only_itself(
    data_dir, agent
) -> None:
    from bot.call.runtime import Runtime
    from integrations.nlu.entities import EntityExtractor
    from tests.fakes.classifier import ScriptedClassifier

    def runtime(workers: str) -> Runtime:
        settings = Settings.load(
            {
                "CALLAGENT_DATA_DIR": str(data_dir),
                "CALLAGENT_CRM": "none",
                "CALLAGENT_WORKERS": workers,
                "CALLAGENT_NO_EARLY_RUNS_FROM_CALLS": "6",
            }
        )
        return Runtime(settings, agent, None, None, ScriptedClassifier(), EntityExtractor(), None)

    alone, sibling = runtime("1"), runtime("2")
    alone.active_calls = sibling.active_calls = 3
    assert (alone.host_calls, sibling.host_calls) == (3, 6)
    assert alone.speculation.claim()  # 3 calls on the host: early runs go on
    assert not sibling.speculation.claim()  # 6 on the host (3 here, 3 in the sibling)


def test_the_supervisor_tells_each_worker_how_many_siblings_share_its_cores(
    data_dir, monkeypatch
) -> None:
    from bot.serving import serve, supervisor

    commands: list[list[str]] = []

    class Recording:
        def __init__(self, command: Any, workers: int, sock: Any) -> None:
            commands.append(command(7, 8))
            sock.close()

        def run(self) -> int:
            return 0

    monkeypatch.setattr(supervisor, "Supervisor", Recording)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    settings = Settings.load(
        {
            "CALLAGENT_DATA_DIR": str(data_dir),
            "CALLAGENT_WORKERS": "2",
            "CALLAGENT_HOST": "127.0.0.1",
            "PORT": str(port),
        }
    )
    assert serve.supervise(settings) == 0
    assert commands[0][commands[0].index("--workers") + 1] == "2"
    assert "--listen-fd" in commands[0]
