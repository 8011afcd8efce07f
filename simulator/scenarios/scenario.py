"""Scenario files: a scripted caller, its line and its expectations, read from YAML.

A scenario is one call::

    name: opening hours, then a person
    caller: {voice: slt, rate: 1.0}          # flite voice or espeak:<voice>; rate 0.5-2
    noise: {type: babble, snr_db: 10}         # optional: white, pink or babble
    line: {packet_loss: 0.02, jitter_ms: 40}  # optional impairments
    greeting:                                 # optional expectations on the greeting
      reply_contains: [brightside]
    steps:
      - say: What are your opening hours?
        expect: {intent: opening_hours, reply_contains: [monday]}
      - barge_in: Sorry, where are you?       # speak 800 ms into the bot's reply
        after_ms: 800
        expect: {interrupted: true, intent: location}
      - silence: 2
      - press: "0"
        expect: {escalation: explicit_request, call_ends: true}
      - hang_up

The file is validated by pydantic; errors name the file, the line (the loader keeps each
key's line), the field path and the fix, e.g.
``calls.yaml:7: steps[2].sya: unknown key 'sya' (allowed: say, silence, ...)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic import dataclasses as pydantic_dataclasses

from bot.yaml_schema import Loc, Problem, check, load_yaml, problems, yaml_problem
from simulator.phone import DTMF_DIGITS, LineConditions
from simulator.voices.caller_voice import DEFAULT_VOICE, check_voice
from simulator.voices.noise import NOISE_KINDS, NoiseSpec

ACTIONS = ("say", "silence", "press", "barge_in", "hang_up")
BANDS = ("act", "clarify", "repair")
DEFAULT_REPLY_TIMEOUT_S = 20.0
MAX_SILENCE_S = 120.0
_VALUE = ConfigDict(extra="forbid")
_FILE = ConfigDict(extra="forbid", frozen=True)


class ScenarioError(ValueError):
    """A scenario file is malformed; the message names the file and the line."""

    def __init__(self, path: str, line: int | None, column: int | None, message: str):
        self.path = path
        self.line = line
        self.column = column
        self.detail = message
        where = path if line is None else f"{path}:{line}" + (f":{column}" if column else "")
        super().__init__(f"{where}: {message}")


# Values as written: checks shared by the file's fields


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be text")
    text = str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def _text_or_empty(value: Any) -> str:
    return "" if isinstance(value, str) and not value.strip() else _text(value)


def _listed(value: Any) -> Any:
    """One item or a list of them."""
    return value if isinstance(value, list | tuple) else [value]


def _lower(words: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(w.lower() for w in words)


def _between(low: float, high: float) -> BeforeValidator:
    def check_number(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number")
        if not low <= float(value) <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        return float(value)

    return BeforeValidator(check_number)


def _word_groups(value: Any) -> tuple[tuple[str, ...], ...]:
    """``[monday, [saturday, sunday]]``: each group, one of its words must be in the reply."""
    groups = []
    for item in _listed(value):
        words = [_text(w) for w in item] if isinstance(item, list) else [_text(item)]
        if not words:
            raise ValueError("an empty group")
        groups.append(_lower(tuple(words)))
    return tuple(groups)


Text = Annotated[str, BeforeValidator(_text)]
Texts = Annotated[tuple[Text, ...], BeforeValidator(_listed)]
Words = Annotated[tuple[Text, ...], BeforeValidator(_listed), AfterValidator(_lower)]


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
    reply_contains: Annotated[tuple[tuple[str, ...], ...], BeforeValidator(_word_groups)] = ()
    reply_excludes: Words = ()
    no_reply: StrictBool | None = None
    interrupted: StrictBool | None = None
    resumes: StrictBool | None = None
    escalation: EscalationExpectation | None = None
    call_ends: StrictBool | None = None
    max_latency_ms: Annotated[float, _between(1, 60000)] | None = None
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
    rate: Annotated[float, _between(0.5, 2.0)] = 1.0
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


# Loading


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file.

    Raises:
        ScenarioError: the file is unreadable, not YAML, or not a valid scenario.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(str(p), None, None, f"cannot read the file ({type(e).__name__})") from e
    return parse_scenario(text, str(p))


def load_scenarios(paths: Iterable[str | Path]) -> tuple[list[Scenario], list[ScenarioError]]:
    """Load many files (directories: their ``*.yaml`` / ``*.yml``), collecting every error."""
    scenarios, errors = [], []
    for path in expand_paths(paths):
        try:
            scenarios.append(load_scenario(path))
        except ScenarioError as e:
            errors.append(e)
    return scenarios, errors


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; directories expanded to their YAML files (sorted)."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml"))
        else:
            out.append(p)
    return out


def parse_scenario(text: str, path: str = "<scenario>") -> Scenario:
    """Parse a scenario from YAML text.

    Raises:
        ScenarioError: naming the line of the first problem (the message lists them all).
    """
    try:
        data = load_yaml(text)
    except yaml.YAMLError as e:
        raise _error(path, [yaml_problem(e)]) from None
    if data is None:
        raise ScenarioError(path, 1, None, "the file is empty: a scenario needs 'steps'")
    try:
        scenario_file = ScenarioFile.model_validate(data)
    except ValidationError as e:
        raise _error(path, problems(e, data, ScenarioFile)) from None
    steps = tuple(
        step.build(i, getattr(data["steps"], "item_lines", [None] * i)[i - 1])
        for i, step in enumerate(scenario_file.steps, 1)
    )
    after_hang_up: list[tuple[Loc, str]] = [
        (("steps", step.index - 1), "comes after hang_up")
        for prev, step in zip(steps, steps[1:], strict=False)
        if prev.action == "hang_up"
    ]
    if after_hang_up:
        raise _error(path, check(data, after_hang_up))
    noise, line = scenario_file.noise, scenario_file.line
    return Scenario(
        name=scenario_file.name or Path(path).stem,
        path=path,
        steps=steps,
        description=scenario_file.description,
        caller=scenario_file.caller,
        noise=NoiseSpec(noise.type, noise.snr_db, noise.seed) if noise else None,
        line=LineConditions(**line.model_dump()) if line else None,
        greeting=scenario_file.greeting,
        tags=scenario_file.tags,
    )


def _error(path: str, found: list[Problem]) -> ScenarioError:
    """The first problem (by line) as the error; the message lists every one."""
    first = found[0]
    more = [f"{path}" + (f":{p.line}" if p.line else "") + f": {p}" for p in found[1:]]
    return ScenarioError(path, first.line, first.column, "\n".join([str(first), *more]))


# The file's shape where it differs from the scenario's types


class NoiseFile(BaseModel):
    """``noise: {type: babble, snr_db: 10, seed: 0}``."""

    model_config = _FILE

    type: Text
    snr_db: Annotated[float, _between(-20, 60)]
    seed: Annotated[int, _between(0, 2**31)] = 0

    @field_validator("type")
    @classmethod
    def _kind(cls, kind: str) -> str:
        if kind not in NOISE_KINDS:
            raise ValueError(f"must be one of {', '.join(NOISE_KINDS)}")
        return kind


class LineFile(BaseModel):
    """``line: {packet_loss: 0.02, loss_burst: 3, jitter_ms: 40, seed: 0}``."""

    model_config = _FILE

    packet_loss: Annotated[float, _between(0, 0.5)] = 0.0
    loss_burst: Annotated[float, _between(1, 50)] = 1.0
    jitter_ms: Annotated[float, _between(0, 1000)] = 0.0
    seed: Annotated[int, _between(0, 2**31)] = 0


def _no_value(value: Any) -> bool:
    if value not in (None, True):
        raise ValueError("takes no value (write just 'hang_up')")
    return True


class StepFile(BaseModel):
    """One step as written: exactly one action, with what to expect."""

    model_config = _FILE

    say: Text | None = None
    silence: Annotated[float, _between(0.02, MAX_SILENCE_S)] | None = None
    press: Text | None = None
    barge_in: Text | None = None
    hang_up: Annotated[bool, BeforeValidator(_no_value)] = False
    expect: Expectations | None = None
    after_ms: Annotated[int, _between(0, 30000)] | None = None
    timeout: Annotated[float, _between(1, 300)] = DEFAULT_REPLY_TIMEOUT_S

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip() == "hang_up":
            return {"hang_up": True}
        if isinstance(value, str):
            raise ValueError(f"unknown step {value!r} (a bare step can only be hang_up)")
        if not isinstance(value, dict):
            raise ValueError("must be a mapping like 'say: Hello'")
        return value

    @field_validator("press")
    @classmethod
    def _keys(cls, digits: str) -> str:
        bad = "".join(sorted({d for d in digits if d not in DTMF_DIGITS}))
        if bad:
            raise ValueError(f"{bad!r} are not keys (0-9 * # A-D)")
        return digits

    @field_validator("expect")
    @classmethod
    def _expectable(cls, expect: Expectations | None, info: ValidationInfo) -> Expectations | None:
        if expect is None:
            return None
        if info.data.get("hang_up"):
            raise ValueError("hang_up has nothing to expect")
        barge_only = [k for k in ("interrupted", "resumes") if getattr(expect, k) is not None]
        if barge_only and info.data.get("barge_in") is None:
            raise ValueError(f"'{barge_only[0]}' only applies to barge_in steps")
        return expect

    @field_validator("after_ms")
    @classmethod
    def _barge_in_only(cls, after_ms: int | None, info: ValidationInfo) -> int | None:
        if after_ms is not None and info.data.get("barge_in") is None:
            raise ValueError("only applies to barge_in")
        return after_ms

    @model_validator(mode="after")
    def _one_action(self) -> Self:
        found = [a for a in ACTIONS if getattr(self, a) not in (None, False)]
        if len(found) != 1:
            raise ValueError(
                f"needs exactly one of {', '.join(ACTIONS)} (found {', '.join(found) or 'none'})"
            )
        return self

    def build(self, index: int, line: int | None) -> Step:
        """The :class:`Step` the runner plays."""
        action = next(a for a in ACTIONS if getattr(self, a) not in (None, False))
        return Step(
            index,
            action,
            text=self.say or self.barge_in or "",
            seconds=self.silence or 0.0,
            digits=self.press or "",
            after_ms=(800 if self.after_ms is None else self.after_ms) if self.barge_in else 0,
            timeout_s=self.timeout,
            expect=self.expect or Expectations(),
            line=line,
        )


def _non_empty(steps: tuple[StepFile, ...]) -> tuple[StepFile, ...]:
    if not steps:
        raise ValueError("must be a non-empty list of steps")
    return steps


class ScenarioFile(BaseModel):
    """A scenario file as written."""

    model_config = _FILE

    name: Text | None = None
    description: Annotated[str, BeforeValidator(_text_or_empty)] = ""
    caller: CallerSpec = CallerSpec()
    noise: NoiseFile | None = None
    line: LineFile | None = None
    greeting: Expectations | None = None
    steps: Annotated[tuple[StepFile, ...], AfterValidator(_non_empty)]
    tags: Texts = ()


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
