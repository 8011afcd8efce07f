"""The campaign queue: its backend from one setting, its stale-proof lock, the server's consumer."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from huey import Huey, RedisHuey, SqliteHuey
from sqlalchemy import Engine

from bot.settings import Settings, SettingsError
from integrations.outbound.queue import (
    QueueUrlError,
    StaleLock,
    default_queue_url,
    make_huey,
    parse_queue_url,
)


def test_the_embedded_default_is_sqlite_in_the_data_folder(tmp_path: Path) -> None:
    settings = Settings.load({"CALLAGENT_DATA_DIR": str(tmp_path)})
    assert settings.campaign_queue_url == default_queue_url(tmp_path)
    huey = make_huey(settings.campaign_queue_url)
    assert isinstance(huey, SqliteHuey)
    huey.put("probe", 1)
    assert (tmp_path / "queue.db").is_file()


@pytest.mark.parametrize(
    ("url", "kind", "huey_class"),
    [
        ("redis://127.0.0.1:6390/2", "redis", RedisHuey),
        ("rediss://user:pw@redis.example.com:6380/0", "redis", RedisHuey),
    ],
)
def test_distributed_backends_from_their_url(url: str, kind: str, huey_class: type) -> None:
    assert parse_queue_url(url).kind == kind
    assert parse_queue_url(url).distributed
    assert isinstance(make_huey(url), huey_class)  # connects lazily


def test_postgresql_is_a_distributed_backend_too() -> None:
    backend = parse_queue_url("postgres://callagent@db.example.com/queue")
    assert (backend.kind, backend.target) == (
        "postgresql",
        "postgresql://callagent@db.example.com/queue",
    )  # PostgresHuey connects (and creates its tables) when made


@pytest.mark.parametrize("url", ["amqp://rabbit/", "sqlite://", "redis:///0", "queue.db"])
def test_a_bad_queue_url_names_the_setting_and_the_fix(url: str) -> None:
    with pytest.raises(QueueUrlError):
        parse_queue_url(url)
    with pytest.raises(SettingsError) as e:
        Settings.load({"CALLAGENT_QUEUE_URL": url})
    message = str(e.value)
    assert "CALLAGENT_QUEUE_URL" in message and "redis://host:6379/0" in message
    assert "CALLAGENT_QUEUE_URL=***" in message  # the value may hold a password


def test_the_stale_lock_excludes_then_is_taken_over_when_its_holder_died(tmp_path: Path) -> None:
    huey = make_huey(f"sqlite:///{tmp_path / 'q.db'}")
    lock = StaleLock(huey, stale_s=0.3, wait_s=0.05)
    assert lock.try_acquire("claim.cp_1")
    assert not lock.try_acquire("claim.cp_1")  # held
    assert lock.try_acquire("claim.cp_2")  # another campaign's is separate
    with lock.hold("claim.cp_1") as held:
        assert not held  # gave up after wait_s
    time.sleep(0.35)  # the holder "died" without releasing it
    assert lock.try_acquire("claim.cp_1")
    lock.release("claim.cp_1")
    with lock.hold("claim.cp_1") as held:
        assert held
    assert lock.try_acquire("claim.cp_1")  # released after the block


def test_serve_runs_the_queue_consumer_in_process_and_stops_it_with_the_server(
    data_dir: Path, agent: Any, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from bot.call.runtime import Runtime
    from bot.outbound.wiring import RunnerParts
    from bot.web.app import create_app
    from integrations.nlu.entities import EntityExtractor
    from integrations.outbound.campaigns import CampaignStore
    from simulator.fake_dialer import FakeDialer
    from simulator.queue_worker import sim_campaign, sim_rules
    from tests.fakes.classifier import ScriptedClassifier

    def parts(_settings: Settings, engine: Engine) -> RunnerParts:
        store = CampaignStore(engine)
        return RunnerParts(store, FakeDialer(store.outbound, tmp_path / "dials.db"))

    settings = Settings.load({"CALLAGENT_DATA_DIR": str(data_dir), "CALLAGENT_CRM": "none"})
    runtime = Runtime(settings, agent, None, None, ScriptedClassifier(), EntityExtractor(), None)
    app = create_app(settings, runtime, campaign_parts=parts)
    with TestClient(app):
        queue = app.state.campaign_queue
        assert queue is not None and queue.consumer is not None
        engine = queue.runner.attempts.engine
        store = CampaignStore(engine)
        campaign_id = sim_campaign(store, ["+15555550123"], sim_rules(max_concurrent=1))
        queue.runner.kick_campaign(campaign_id)  # dialled by the server's own worker threads
        deadline = time.monotonic() + 15
        while not store.outbound.attempts(campaign_id=campaign_id):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        threads = [t for _w, t in queue.consumer.consumer.worker_threads]
        assert all(t.is_alive() for t in threads)
    assert not any(t.is_alive() for t in threads)  # stopped with the server
    assert (data_dir / "queue.db").is_file()
    attempt = store.outbound.attempts(campaign_id=campaign_id)[0]
    assert attempt.provider_call_id is not None  # placed through the dialler, on the server loop


def test_serve_without_a_campaign_store_starts_without_the_queue(
    data_dir: Path, agent: Any
) -> None:
    from fastapi.testclient import TestClient

    from bot.call.runtime import Runtime
    from bot.web.app import create_app
    from integrations.nlu.entities import EntityExtractor
    from tests.fakes.classifier import ScriptedClassifier

    settings = Settings.load({"CALLAGENT_DATA_DIR": str(data_dir), "CALLAGENT_CRM": "none"})
    runtime = Runtime(settings, agent, None, None, ScriptedClassifier(), EntityExtractor(), None)
    app = create_app(settings, runtime)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert app.state.campaign_queue is None


def _kicks(huey: Huey) -> list[tuple[Any, ...]]:
    """The ``kick_campaign`` tasks waiting in ``huey``'s queue (its runner registered)."""
    return [tuple(t.args) for t in huey.pending() if type(t).__name__ == "kick_campaign"]


def test_a_campaign_created_or_resumed_over_the_api_is_kicked_onto_the_servers_queue(
    data_dir: Path, agent: Any, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from bot.call.runtime import Runtime
    from bot.outbound.wiring import RunnerParts
    from bot.web.app import create_app
    from integrations.nlu.entities import EntityExtractor
    from integrations.outbound.campaigns import CampaignStore
    from simulator.fake_dialer import FakeDialer
    from tests.fakes.classifier import ScriptedClassifier

    def parts(_settings: Settings, engine: Engine) -> RunnerParts:
        store = CampaignStore(engine)
        return RunnerParts(store, FakeDialer(store.outbound, tmp_path / "dials.db"))

    token = "operator-token-for-tests-0123"
    settings = Settings.load(
        {
            "CALLAGENT_DATA_DIR": str(data_dir),
            "CALLAGENT_CRM": "none",
            "CALLAGENT_OPERATOR_TOKEN": token,
            "CALLAGENT_QUEUE_IN_PROCESS": "false",  # workers elsewhere: the kick waits queued
        }
    )
    runtime = Runtime(settings, agent, None, None, ScriptedClassifier(), EntityExtractor(), None)
    app = create_app(settings, runtime, campaign_parts=parts)
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        huey = app.state.campaign_queue.runner.huey
        created = client.post(
            "/api/campaigns?agent=dental_front_desk",
            content="phone\n+12125550101\n",
            headers={**auth, "content-type": "text/csv"},
        )
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]
        _wait(lambda: _kicks(huey) == [(campaign_id,)])
        assert client.post(f"/api/campaigns/{campaign_id}/pause", headers=auth).is_success
        assert client.post(f"/api/campaigns/{campaign_id}/resume", headers=auth).is_success
        _wait(lambda: _kicks(huey) == [(campaign_id,), (campaign_id,)])


def test_the_cli_enqueues_the_kick_on_the_settings_queue_for_a_worker(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main
    from bot.outbound.loop_bridge import LoopBridge
    from integrations.storage.engine import make_engine
    from simulator.queue_worker import sim_runner

    contacts = tmp_path / "contacts.csv"
    contacts.write_text("phone\n+12125550101\n", encoding="utf-8")
    args = ["campaign", "create", "--agent", "dental_front_desk", "--csv", str(contacts)]
    assert main([*args, "--json"]) == 0, capsys.readouterr().err
    campaign_id = json.loads(capsys.readouterr().out)["id"]

    settings = Settings.load()
    engine = make_engine(settings.records_database_url)
    loop = LoopBridge.own()
    try:  # a worker on the same settings finds the kick and fills the campaign
        runner = sim_runner(
            make_huey(settings.campaign_queue_url), engine, tmp_path / "dials.db", loop
        )
        assert _kicks(runner.huey) == [(campaign_id,)]
        task = runner.huey.dequeue()
        assert task is not None
        runner.huey.execute(task)
        assert [type(t).__name__ for t in runner.huey.pending()] == ["dial_contact"]
    finally:
        loop.close()
        engine.dispose()


def _wait(done: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline
        time.sleep(0.05)
