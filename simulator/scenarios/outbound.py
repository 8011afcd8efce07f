"""Outbound scenario files: the agent calls a simulated callee, and what must come of it.

::

    name: Reminder - confirmed
    direction: outbound
    agent: appointment_reminders
    contact: {phone: "+15555550142", variables: {first_name: James, appointment: Friday 10 am}}
    callee:
      answers: person            # person | voicemail | ivr | no_answer | busy | failed
      voice: slt
      hello: Hello?
      steps:                     # person: each after the bot's turn is over
        - say: Yes, I'll be there.
        - press: "1234#"
        - silence: 2
      greeting: ...              # voicemail / ivr: what the machine says
      beep: true                 # voicemail: true, false or {frequency_hz, seconds}
    expect:
      disposition: confirmed
      heard_contains: [[friday], [appointment]]
      call_status: completed
      answered_by: human
      message_after_beep_max_s: 1.0
      do_not_call: true          # on GET /api/dnc afterwards, and a second dial refused (409)

``disposition`` is the attempt's (``GET /api/calls/outbound/{id}``); every call that reaches
the agent is also checked against its record (see :mod:`simulator.scenarios.outbound_checks`).
A single call is never retried: retries belong to campaigns.

Errors name the file and line like inbound scenarios (:class:`ScenarioError`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, StrictBool

from simulator.outbound.callee import (
    Beep,
    Busy,
    Callee,
    CalleeLine,
    Failed,
    Ivr,
    NoAnswer,
    Pause,
    Person,
    Press,
    Say,
    Voicemail,
)
from simulator.scenarios.scenario import ScenarioError
from simulator.scenarios.scenario_file import (
    FILE_CONFIG,
    StepFile,
    read_scenario_text,
    validated_file,
)
from simulator.scenarios.scenario_values import Text, Words, word_groups
from simulator.voices.caller_voice import DEFAULT_VOICE

ANSWERS = ("person", "voicemail", "ivr", "no_answer", "busy", "failed")


class ContactFile(BaseModel):
    """``contact: {phone, variables}``."""

    model_config = FILE_CONFIG

    phone: Text
    variables: dict[str, str] = {}


class BeepFile(BaseModel):
    """``beep: {frequency_hz, seconds}``."""

    model_config = FILE_CONFIG

    frequency_hz: float = 1000.0
    seconds: float = 0.5


class CalleeFile(BaseModel):
    """``callee:`` as written."""

    model_config = FILE_CONFIG

    answers: Literal["person", "voicemail", "ivr", "no_answer", "busy", "failed"]
    voice: Text = DEFAULT_VOICE
    rate: float = 1.0
    hello: str = "Hello?"
    steps: tuple[StepFile, ...] = ()
    greeting: Text | None = None
    beep: StrictBool | BeepFile = True
    ring_secs: float = 1.0
    record_secs: float = 30.0
    error_code: int | None = None

    def build(self) -> Callee:
        """The simulated callee."""
        common: dict[str, Any] = {"ring_s": self.ring_secs}
        if self.answers == "person":
            return Person(
                lines=tuple(_line(step) for step in self.steps),
                hello=self.hello,
                voice=self.voice,
                rate=self.rate,
                **common,
            )
        if self.answers in ("voicemail", "ivr"):
            machine: dict[str, Any] = {"voice": self.voice, "rate": self.rate}
            machine["record_s"] = self.record_secs
            if self.greeting:
                machine["prompt"] = self.greeting
            if self.answers == "ivr":
                return Ivr(**machine, **common)
            beep = self.beep
            machine["beep"] = (
                Beep(beep.frequency_hz, beep.seconds)
                if isinstance(beep, BeepFile)
                else (Beep() if beep else None)
            )
            return Voicemail(**machine, **common)
        if self.answers == "no_answer":
            return NoAnswer()
        if self.answers == "busy":
            return Busy()
        return Failed(code=self.error_code)


def _line(step: StepFile) -> CalleeLine:
    if step.say:
        return Say(step.say)
    if step.press:
        return Press(step.press)
    if step.silence:
        return Pause(step.silence)
    raise ValueError("a callee step is say, press or silence")


class OutboundExpectations(BaseModel):
    """``expect:`` as written (every field optional)."""

    model_config = FILE_CONFIG

    disposition: Text | None = None
    call_status: Text | None = None
    answered_by: Text | None = None
    heard_contains: Annotated[tuple[tuple[str, ...], ...], BeforeValidator(word_groups)] = ()
    heard_excludes: Words = ()
    message_after_beep_max_s: float | None = None
    do_not_call: StrictBool | None = None


class OutboundScenarioFile(BaseModel):
    """An outbound scenario file as written."""

    model_config = FILE_CONFIG

    name: Text | None = None
    description: str = ""
    direction: Literal["outbound"]
    agent: Text
    contact: ContactFile
    callee: CalleeFile
    expect: OutboundExpectations = OutboundExpectations()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutboundScenario:
    """One outbound call to play: who is called, how they answer, what must come of it."""

    name: str
    path: str
    agent: str
    phone: str
    variables: dict[str, str]
    callee: Callee
    expect: OutboundExpectations

    @property
    def id(self) -> str:
        """The file name without extension."""
        return Path(self.path).stem


def is_outbound(text: str) -> bool:
    """Whether scenario text says ``direction: outbound``."""
    return re.search(r"^direction:\s*outbound\s*$", text, re.MULTILINE) is not None


def load_outbound_scenario(path: str | Path) -> OutboundScenario:
    """Read and validate one outbound scenario file.

    Raises:
        ScenarioError: unreadable, not YAML, or not a valid outbound scenario.
    """
    return parse_outbound_scenario(read_scenario_text(path), str(path))


def parse_outbound_scenario(text: str, path: str = "<scenario>") -> OutboundScenario:
    """Parse an outbound scenario from YAML text (see the module docstring)."""
    _, file = validated_file(text, path, OutboundScenarioFile, empty="the file is empty")
    bad = [s for s in file.callee.steps if s.barge_in or s.hang_up or s.expect]
    if bad:
        raise ScenarioError(path, None, None, "callee steps are say, press or silence only")
    return OutboundScenario(
        name=file.name or Path(path).stem,
        path=path,
        agent=file.agent,
        phone=file.contact.phone,
        variables=dict(file.contact.variables),
        callee=file.callee.build(),
        expect=file.expect,
    )
