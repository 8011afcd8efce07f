"""The campaign queue: its backend from one setting, its stale-proof lock, the server's consumer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from huey import RedisHuey, SqliteHuey
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
