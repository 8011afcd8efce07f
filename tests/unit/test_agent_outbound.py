"""The agent file's outbound section: validation (errors name the line) and rendering."""

from pathlib import Path

import pytest

from bot.agent import AgentFileError, load_agent
from integrations.outbound.dispositions import Disposition
from processors.outbound_config import MissingVariablesError

REMINDERS = Path(__file__).parents[2] / "bot" / "agents" / "appointment_reminders.yaml"

BASE = """\
name: x
greeting: hi
intents:
  confirm:
    examples: [I'll be there, that works]
    response: Great.
    action: end_call
  opt_out:
    examples: [stop calling me, take me off your list]
    response: Done. Goodbye.
    action: end_call
"""


def _load(tmp_path: Path, outbound: str, intents_extra: str = "") -> object:
    path = tmp_path / "agent.yaml"
    path.write_text(BASE + intents_extra + "outbound:\n" + outbound, encoding="utf-8")
    return load_agent(path)


def test_reference_reminder_agent_loads_and_renders():
    agent = load_agent(REMINDERS)
    outbound = agent.outbound
    assert outbound is not None
    assert outbound.variables == ("first_name", "appointment")
    assert outbound.outcomes["confirm_appointment"] is Disposition.CONFIRMED
    assert outbound.outcomes["opt_out"] is Disposition.OPTED_OUT
    opening = outbound.render_opening({"first_name": "Maria", "appointment": "Friday at 10 AM"})
    assert opening.startswith("Hi Maria, this is Riley from Brightside Dental")
    assert "Friday at 10 AM" in opening
    voicemail = outbound.render_voicemail({"first_name": "Maria", "appointment": "Friday"})
    assert "5 5 5, 5 5 5, 0 1 0 0" in voicemail  # the callback number, said digit by digit
    assert outbound.missing_variables({"first_name": "Maria"}) == ["appointment"]


def test_rendering_names_the_missing_variables_and_uses_crm_fields(tmp_path: Path):
    agent = _load(
        tmp_path,
        "  purpose: remind\n  variables: [when]\n  opening: Hi {first_name}, about {when}?\n",
    )
    outbound = agent.outbound  # type: ignore[attr-defined]
    with pytest.raises(MissingVariablesError) as e:
        outbound.render_opening({})
    assert e.value.missing == {"first_name", "when"}
    assert "first_name, when" in str(e.value)
    # a CRM field fills what the contact does not give; the contact's variables win
    assert outbound.render_opening({"when": "Monday"}, {"first_name": "Ann"}) == (
        "Hi Ann, about Monday?"
    )
    assert outbound.render_opening(
        {"when": "Monday", "first_name": "Bo"}, {"first_name": "Ann"}
    ).startswith("Hi Bo")


@pytest.mark.parametrize(
    ("outbound", "line", "message"),
    [
        (
            "  purpose: remind\n  variables: [when]\n  opening: Hi {nickname} about {when}\n",
            15,
            "unknown placeholder(s) {nickname}",
        ),
        (
            "  purpose: remind\n  voicemail: call {callback_number}\n",
            14,
            "set outbound.callback_number",
        ),
        (
            "  purpose: remind\n  outcomes:\n    confirm: booked\n",
            15,
            "must be one of confirmed, rescheduled",
        ),
        (
            "  purpose: remind\n  outcomes:\n    confirm: confirmed\n    dance: cancelled\n",
            16,
            "no intent named 'dance'",
        ),
        (
            "  purpose: remind\n  opt_out_intents: [stop]\n",
            14,
            "no intent named 'stop'",
        ),
        ("  purpose: remind\n  yes_intent: nope\n", 14, "no intent named 'nope'"),
        ("  purpose: remind\n  no_reply: Move or cancel?\n", 14, "'deny'"),
        ("  opening: hi\n", 12, "purpose"),
    ],
)
def test_bad_outbound_sections_name_the_line(
    tmp_path: Path, outbound: str, line: int, message: str
):
    with pytest.raises(AgentFileError) as e:
        _load(tmp_path, outbound)
    text = str(e.value)
    assert f"agent.yaml:{line}:" in text, text
    assert message in text, text


def test_an_opt_out_intent_must_end_the_call(tmp_path: Path):
    path = tmp_path / "agent.yaml"
    path.write_text(
        BASE.replace("    response: Done. Goodbye.\n    action: end_call\n", "")
        + "outbound:\n  purpose: remind\n",
        encoding="utf-8",
    )
    with pytest.raises(AgentFileError, match="must end the call"):
        load_agent(path)


def test_an_agent_without_an_outbound_section_has_none():
    agent = load_agent(REMINDERS.with_name("dental_front_desk.yaml"))
    assert agent.outbound is None
