"""A scenario: a scripted caller, its line and its expectations (one call).

The types the runner plays and checks; :mod:`simulator.scenarios.scenario_file` reads them
from YAML (the file's format is described there).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    StrictBool,
    field_validator,
    model_validator,
)
from pydantic import dataclasses as pydantic_dataclasses

from simulator.phone import LineConditions
from simulator.scenarios.scenario_values import Text, Texts, Words, between, word_groups
from simulator.voices.caller_voice import DEFAULT_VOICE, check_voice
from simulator.voices.noise import NoiseSpec

ACTIONS = ("say", "silence", "press", "barge_in", "hang_up")
BANDS = ("act", "clarify", "repair")
DEFAULT_REPLY_TIMEOUT_S = 20.0
_VALUE = ConfigDict(extra="forbid")


class ScenarioError(ValueError):
    """A scenario file is malformed; the message names the file and the line."""

    def __init__(self, path: str, line: int | None, column: int | None, message: str):
        self.path = path
        self.line = line
        self.column = column
        self.detail = message
        where = path if line is None else f"{path}:{line}" + (f":{column}" if column else "")
        super().__init__(f"{where}: {message}")


@pydantic_dataclasses.dataclass(frozen=True, config=_VALUE)
class EscalationExpectation:
    """An escalation (or none) the step must cause.

    Written as ``true``/``false``, a trigger name, or ``{trigger: ..., reason: ...}``.

    Parameters:
        expected: Whether the call must escalate.
        trigger: The trigger it must be (``explicit_request``, ``out_of_scope``, ...).
        reason: Text the escalation's reason must contain.
    """

    expected: StrictBool = True
    trigger: Text | None = None
    reason: Annotated[Text, AfterValidator(str.lower)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return {"expected": value}
        if isinstance(value, str | int | float):
            return {"trigger": value}
        return value


@pydantic_dataclasses.dataclass(frozen=True, config=_VALUE)
class Expectations:
    """What must hold after a step (every field optional).

    Parameters:
        intent: The intent recognised must be one of these.
        band: The NLU band (``act``, ``clarify``, ``repair``).
        reply_contains: Each group: the bot's reply must contain one of its words.
        reply_excludes: The bot's reply must contain none of these.
        no_reply: The bot must (True) or must not (False) stay silent after the step.
        interrupted: (barge-in) the bot must (or must not) stop talking for the caller.
        resumes: (barge-in) the bot must (or must not) pick its cut reply up again (what a
            backchannel like "mhm" should get).
        escalation: An escalation the step must (or must not) cause.
        call_ends: The call must (or must not) end after the step.
        max_latency_ms: The reply must start within this long of the caller's end of speech.
        line: Where the expectations are written (for messages; from the loader, not the file).
    """

    intent: Texts = ()
    band: Literal["act", "clarify", "repair"] | None = None
    reply_contains: Annotated[tuple[tuple[str, ...], ...], BeforeValidator(word_groups)] = ()
    reply_excludes: Words = ()
    no_reply: StrictBool | None = None
    interrupted: StrictBool | None = None
    resumes: StrictBool | None = None
    escalation: EscalationExpectation | None = None
    call_ends: StrictBool | None = None
    max_latency_ms: Annotated[float, between(1, 60000)] | None = None
    line: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _line(cls, value: Any) -> Any:
        """The line the loader kept; ``line`` is not a key of the file."""
        if isinstance(value, dict):
            if "line" in value:
                raise ValueError("unknown key 'line'")
            return {**value, "line": getattr(value, "line", None)}
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.no_reply and (self.reply_contains or self.intent):
            raise ValueError("no_reply contradicts reply_contains/intent")
        return self

    @property
    def empty(self) -> bool:
        """Whether nothing is expected."""
        return not (
            self.intent
            or self.band
            or self.reply_contains
            or self.reply_excludes
            or self.no_reply is not None
            or self.interrupted is not None
            or self.resumes is not None
            or self.escalation is not None
            or self.call_ends is not None
            or self.max_latency_ms is not None
        )


@dataclass(frozen=True)
class Step:
    """One caller action.

    Parameters:
        index: Position in the scenario (1-based).
        action: ``say``, ``silence``, ``press``, ``barge_in`` or ``hang_up``.
        text: What the caller says (``say``, ``barge_in``).
        seconds: How long the caller stays silent (``silence``).
        digits: Keys pressed (``press``).
        after_ms: (``barge_in``) how long after the bot starts its reply the caller speaks.
        timeout_s: Longest wait for the bot's reply.
        expect: What must hold afterwards.
        line: Where the step is written.
    """

    index: int
    action: str
    text: str = ""
    seconds: float = 0.0
    digits: str = ""
    after_ms: int = 0
    timeout_s: float = DEFAULT_REPLY_TIMEOUT_S
    expect: Expectations = field(default_factory=Expectations)
    line: int | None = None

    def describe(self) -> str:
        """A short human description (``say 'What are...'``)."""
        if self.action in ("say", "barge_in"):
            text = self.text if len(self.text) <= 40 else self.text[:37] + "..."
            extra = f" at +{self.after_ms} ms" if self.action == "barge_in" else ""
            return f"{self.action} {text!r}{extra}"
        if self.action == "silence":
            return f"silence {self.seconds:g}s"
        if self.action == "press":
            return f"press {self.digits}"
        return self.action


@pydantic_dataclasses.dataclass(frozen=True, config=_VALUE)
class CallerSpec:
    """The simulated caller's voice and number."""

    voice: Text = DEFAULT_VOICE
    rate: Annotated[float, between(0.5, 2.0)] = 1.0
    number: Text = "+15555550198"

    @field_validator("voice")
    @classmethod
    def _known_voice(cls, voice: str) -> str:
        problem = check_voice(voice)
        if problem:
            raise ValueError(problem)
        return voice


@dataclass(frozen=True)
class Scenario:
    """One scripted call."""

    name: str
    path: str
    steps: tuple[Step, ...]
    description: str = ""
    caller: CallerSpec = field(default_factory=CallerSpec)
    noise: NoiseSpec | None = None
    line: LineConditions | None = None
    greeting: Expectations | None = None
    tags: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """A short id: the file name without extension."""
        return Path(self.path).stem

    def expected_intents(self) -> list[tuple[str, int | None]]:
        """Every intent named in expectations, with its line."""
        out = []
        for step in self.steps:
            out += [(i, step.expect.line) for i in step.expect.intent]
        return out


def check_against_agent(scenario: Scenario, intents: Iterable[str]) -> list[ScenarioError]:
    """Expectations naming intents the agent does not have (typos), with their lines."""
    known = set(intents) | {"out_of_scope", "dtmf_entry"}
    return [
        ScenarioError(
            scenario.path,
            line,
            None,
            f"intent {name!r} is not an intent of the agent (known: {', '.join(sorted(known))})",
        )
        for name, line in scenario.expected_intents()
        if name not in known
    ]
