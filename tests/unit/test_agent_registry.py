"""Several agents on one server: each its own definition and classifier, the models shared."""

from pathlib import Path
from typing import Any, cast

import pytest

from bot.agent import load_agent
from bot.call.pipeline import CallSpec, run_call
from bot.call.runtime import AgentModels, Runtime
from bot.settings import REFERENCE_AGENT, Settings, SettingsError
from integrations.nlu.entities import EntityExtractor
from tests.fakes.classifier import ScriptedClassifier

REMINDERS = REFERENCE_AGENT.with_name("appointment_reminders.yaml")


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    recognizer = cast(Any, object())  # a shared model: the views must hand out the same one
    reminders = load_agent(REMINDERS)
    return Runtime(
        Settings.load({}),
        load_agent(REFERENCE_AGENT),
        recognizer,
        None,
        ScriptedClassifier(),
        EntityExtractor(),
        None,
        more_agents={
            "appointment_reminders": AgentModels(reminders, ScriptedClassifier(), None, recognizer)
        },
    )


def test_the_default_settings_serve_the_reminder_agent_beside_the_front_desk():
    settings = Settings.load({})
    assert settings.agent_file == REFERENCE_AGENT
    assert settings.more_agent_files == (REMINDERS,)
    assert Settings.load({"CALLAGENT_AGENT_FILES": "none"}).more_agent_files == ()
    # the default agent listed again is served once
    listed = f"{REFERENCE_AGENT},{REMINDERS}"
    assert Settings.load({"CALLAGENT_AGENT_FILES": listed}).more_agent_files == (REMINDERS,)


def test_bad_agent_lists_are_settings_errors(tmp_path: Path):
    with pytest.raises(SettingsError, match="CALLAGENT_AGENT_FILES: .*missing.yaml: no such file"):
        Settings.load({"CALLAGENT_AGENT_FILES": str(tmp_path / "missing.yaml")})
    twin = tmp_path / "dental_front_desk.yaml"
    twin.write_text(REFERENCE_AGENT.read_text())
    with pytest.raises(SettingsError, match="same agent key 'dental_front_desk'"):
        Settings.load({"CALLAGENT_AGENT_FILES": str(twin)})


def test_two_agents_share_one_runtimes_models(runtime: Runtime):
    assert runtime.agent_keys() == ["dental_front_desk", "appointment_reminders"]
    assert runtime.for_agent(None) is runtime
    assert runtime.for_agent("dental_front_desk") is runtime
    view = runtime.for_agent("appointment_reminders")
    assert view.agent.name == "Brightside Dental appointment reminders"
    assert view.agent.outbound is not None
    assert view.classifier is runtime.more_agents["appointment_reminders"].classifier
    assert view.classifier is not runtime.classifier
    for shared in ("recognizer", "entities", "settings", "speculation", "crm", "records"):
        assert getattr(view, shared) is getattr(runtime, shared), shared
    assert view.for_agent(None) is runtime
    view.active_calls += 1  # one count of the server's calls, whichever agent takes them
    assert runtime.active_calls == 1
    runtime.active_calls -= 1
    assert view.active_calls == 0


def test_an_unknown_agent_is_refused_naming_the_known_ones(runtime: Runtime):
    with pytest.raises(ValueError) as e:
        runtime.for_agent("sales")
    assert str(e.value) == (
        "unknown agent 'sales' (this server serves: dental_front_desk, appointment_reminders)"
    )


async def test_a_call_for_an_unknown_agent_fails_before_it_starts(runtime: Runtime):
    spec = CallSpec(transport_kind="twilio", sample_rate_in=8000, sample_rate_out=8000)
    spec.agent = "sales"
    with pytest.raises(ValueError, match="unknown agent 'sales'"):
        await run_call(cast(Any, None), spec, runtime)
    assert runtime.active_calls == 0
