"""The server opens the shared state its settings name, fails clearly without it, closes it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from integrations.shared_state.base import SharedStateError
from integrations.shared_state.memory import MemorySharedState
from simulator.ports import free_tcp_port
from tests.support.shared_state import shared_state_url


def make_app(data_dir: Path, agent: Any, **env: str) -> FastAPI:
    """The server's app with a fake classifier and no speech models."""
    from bot.call.runtime import Runtime
    from bot.settings import Settings
    from bot.web.app import create_app
    from integrations.nlu.entities import EntityExtractor
    from tests.fakes.classifier import ScriptedClassifier

    settings = Settings.load({"CALLAGENT_DATA_DIR": str(data_dir), "CALLAGENT_CRM": "none", **env})
    runtime = Runtime(settings, agent, None, None, ScriptedClassifier(), EntityExtractor(), None)
    return create_app(settings, runtime)


def test_the_default_is_this_process_only(data_dir: Path, agent: Any) -> None:
    app = make_app(data_dir, agent)
    with TestClient(app):
        assert isinstance(app.state.runtime.shared, MemorySharedState)


def test_an_unreachable_server_stops_start_up_naming_the_setting(
    data_dir: Path, agent: Any
) -> None:
    url = f"redis://127.0.0.1:{free_tcp_port()}/0"
    app = make_app(data_dir, agent, CALLAGENT_SHARED_STATE_URL=url)
    with pytest.raises(SharedStateError, match="CALLAGENT_SHARED_STATE_URL"):
        with TestClient(app):
            pass


@pytest.fixture(scope="module", params=["redis", "postgresql"])
def engine_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A server's URL (module scope: set up before ``data_dir`` clears the environment)."""
    with shared_state_url(request.param) as url:
        yield url


def test_the_server_shares_state_through_the_named_engine(
    engine_url: str, data_dir: Path, agent: Any
) -> None:
    app = make_app(data_dir, agent, CALLAGENT_SHARED_STATE_URL=engine_url)
    with TestClient(app) as client:
        shared = app.state.runtime.shared
        assert shared.distributed
        portal = client.portal
        assert portal is not None
        subscription = portal.call(shared.subscribe, "callagent:test:startup")
        count = portal.call(partial(shared.add, "callagent:test:n", 1, ttl_s=60))
        assert count == 1

    async def ended() -> list[str]:  # the app's shutdown closed the shared state
        return [message async for message in subscription]

    assert asyncio.run(asyncio.wait_for(ended(), 10)) == []
