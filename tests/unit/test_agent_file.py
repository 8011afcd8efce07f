from pathlib import Path

import pytest

from bot.agent import AgentFileError, load_agent
from bot.settings import REFERENCE_AGENT
from processors.agent_definition import IntentAction


def test_reference_agent_loads():
    agent = load_agent(REFERENCE_AGENT)
    names = {i.name for i in agent.intents}
    assert {
        "opening_hours",
        "location",
        "book_appointment",
        "reschedule_appointment",
        "cancel_appointment",
        "insurance",
        "talk_to_human",
        "goodbye",
    } <= names
    assert any(n.startswith("kb:") for n in names)
    assert agent.intent("goodbye").action is IntentAction.END_CALL
    assert agent.intent("talk_to_human").action is IntentAction.TRANSFER
    assert len(agent.training_examples()) > 100


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just a list\n", "mapping"),
        ("name: x\ngreeting: hi\n", "intents"),
        ("name: x\ngreeting: hi\nintents:\n  a:\n    examples: [one]\n", "at least two"),
        (
            "name: x\ngreeting: hi\nintents:\n  a:\n    examples: [a, b]\n    action: dance\n",
            "action",
        ),
        (
            "name: x\ngreeting: hi\nintents:\n  a:\n    examples: [a, b]\n    slots:\n"
            "      when: {entity: datetime, prompt: 'When?'}\n    response: ok\n",
            "{when}",
        ),
        (
            "name: x\ngreeting: hi\nnlu: {act_threshold: 0.3, clarify_threshold: 0.6}\n"
            "intents: {}\n",
            "clarify_threshold",
        ),
        ("name: [unclosed\n", "cannot read"),
    ],
)
def test_bad_agent_files_name_the_key(tmp_path: Path, text, message):
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(AgentFileError) as info:
        load_agent(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)
