"""Fixtures shared by the unit and end-to-end tests."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from bot.agent import load_agent
from bot.settings import REFERENCE_AGENT
from integrations.storage import CallStore
from processors.agent_definition import AgentDefinition
from tests.support.env import is_setting
from tests.support.records import open_store


@pytest.fixture(autouse=True)
def _log_sinks_end_with_their_test() -> Iterator[None]:
    """Loguru sinks added while a test ran (a CLI's ``logger.add(sys.stderr)``) go with it.

    Such a sink writes to the test's captured stream, which pytest closes after the test; a
    server thread still logging later printed "Logging error in Loguru Handler" (CI). Only
    sinks added during the test are removed: a module-scoped fixture's sink, added before
    this fixture starts, is kept for the module's other tests (removing every sink broke
    them). Loguru numbers sinks in order, so the ids taken during the test are those between
    two probes.
    """
    first = _next_sink_id()
    yield
    for sink_id in range(first, _next_sink_id()):
        with contextlib.suppress(ValueError):  # already removed by whoever added it
            logger.remove(sink_id)


def _next_sink_id() -> int:
    probe = logger.add(lambda _message: None)
    logger.remove(probe)
    return probe + 1


@pytest.fixture(scope="module")
def agent() -> AgentDefinition:
    """The reference agent file (the dental front desk), loaded once per module."""
    return load_agent(REFERENCE_AGENT)


@pytest.fixture
def call_store(tmp_path: Path) -> Iterator[CallStore]:
    """An empty, migrated SQLite call-record store in the test's temporary directory."""
    with open_store("sqlite", tmp_path) as store:
        yield store


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings as on a fresh install, with data under the test's temporary directory.

    The working directory is the temporary directory (so no ``.env`` is read), no
    callagent setting from the developer's shell is left, and ``CALLAGENT_DATA_DIR`` is
    the returned (not yet created) directory.
    """
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if is_setting(n)]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CALLAGENT_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"
