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
        (
            "name: x\ngreeting: hi\nclarify_either: 'Did you mean {description}?'\n"
            "intents:\n  a:\n    examples: [a, b]\n",
            "{first} and {second}",
        ),
    ],
)
def test_bad_agent_files_name_the_key(tmp_path: Path, text, message):
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(AgentFileError) as info:
        load_agent(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def _load_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(AgentFileError) as info:
        load_agent(path)
    return str(info.value)


def test_an_unknown_key_names_the_file_the_key_its_line_and_the_allowed_keys(tmp_path: Path):
    message = _load_error(
        tmp_path,
        "name: x\ngreeting: hi\nintents:\n  a:\n    examples: [a, b]\n    respons: hello\n",
    )
    assert message.startswith(f"{tmp_path / 'agent.yaml'}:6: intents.a.respons: ")
    assert "unknown key 'respons'" in message
    assert "allowed: description, examples, response," in message
    assert "allowed: name" not in message  # an intent's name is its key


def test_an_unknown_top_level_key_lists_the_agent_files_keys(tmp_path: Path):
    message = _load_error(tmp_path, "name: x\ngreting: hi\ngreeting: hi\nintents: {}\n")
    assert ":2: greting: unknown key 'greting'" in message
    assert "knowledge_base" in message and "source" not in message.split("allowed:")[1]


def test_a_wrong_type_names_the_field_path_and_its_line(tmp_path: Path):
    message = _load_error(
        tmp_path,
        "name: x\ngreeting: hi\nintents:\n  a:\n    examples: [a, b]\n"
        "transfer:\n  target: desk\n  dial_timeout_secs: soon\n",
    )
    assert (
        message
        == f"{tmp_path / 'agent.yaml'}:8: transfer.dial_timeout_secs: must be a whole number"
    )


def test_every_problem_is_reported_in_file_order(tmp_path: Path):
    message = _load_error(
        tmp_path,
        "name: x\ngreeting: hi\nintents:\n  a:\n    examples: [a, b]\n  b:\n    examples: one\n"
        "keypad:\n  '1': a\nescalation:\n  failed_turns: {limit: 0}\n",
    )
    lines = message.splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "intents.b.examples",
        "escalation.failed_turns.limit",
    ]
    assert ":7: " in lines[0] and ":11: " in lines[1]


def test_a_reference_to_a_missing_intent_names_its_line(tmp_path: Path):
    message = _load_error(
        tmp_path,
        "name: x\ngreeting: hi\nintents:\n  a:\n    examples: [a, b]\n"
        "verification:\n  required_for:\n    - a\n    - b\n",
    )
    assert ":9: verification.required_for[2]: no intent named 'b'" in message


def test_yes_and_no_examples_read_as_yaml_gives_them(tmp_path: Path):
    path = tmp_path / "agent.yaml"
    path.write_text("name: x\ngreeting: hi\nintents:\n  affirm:\n    examples: [yes, sure]\n")
    assert load_agent(path).intent("affirm").examples == ("True", "sure")
