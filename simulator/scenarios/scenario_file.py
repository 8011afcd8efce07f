"""Scenario files: reading and validating the YAML a scenario is written in.

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
from pathlib import Path
from typing import Annotated, Any, Self, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.yaml_schema import Loc, Problem, check, load_yaml, problems, yaml_problem
from simulator.phone import DTMF_DIGITS, LineConditions
from simulator.scenarios.scenario import (
    ACTIONS,
    DEFAULT_REPLY_TIMEOUT_S,
    CallerSpec,
    Expectations,
    Scenario,
    ScenarioError,
    Step,
)
from simulator.scenarios.scenario_values import Text, Texts, between, text_or_empty
from simulator.voices.noise import NOISE_KINDS, NoiseSpec

MAX_SILENCE_S = 120.0
_M = TypeVar("_M", bound=BaseModel)
FILE_CONFIG = ConfigDict(extra="forbid", frozen=True)
"""The file models' config: unknown keys are errors."""


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file.

    Raises:
        ScenarioError: the file is unreadable, not YAML, or not a valid scenario.
    """
    return parse_scenario(read_scenario_text(path), str(path))


def read_scenario_text(path: str | Path) -> str:
    """A scenario file's text; a ScenarioError when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = f"cannot read the file ({type(e).__name__})"
        raise ScenarioError(str(path), None, None, reason) from e


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
    data, scenario_file = validated_file(
        text, path, ScenarioFile, empty="the file is empty: a scenario needs 'steps'"
    )
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
        raise scenario_error(path, check(data, after_hang_up))
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


def validated_file(text: str, path: str, model: type[_M], *, empty: str) -> tuple[Any, _M]:
    """The YAML of a scenario file and its model; a ScenarioError names the first problem's line.

    Args:
        text: The file's text.
        path: The file's name, for the error.
        model: The file's pydantic model.
        empty: The error's message when the file holds nothing.
    """
    try:
        data = load_yaml(text)
    except yaml.YAMLError as e:
        raise scenario_error(path, [yaml_problem(e)]) from None
    if data is None:
        raise ScenarioError(path, 1, None, empty)
    try:
        return data, model.model_validate(data)
    except ValidationError as e:
        raise scenario_error(path, problems(e, data, model)) from None


def scenario_error(path: str, found: list[Problem]) -> ScenarioError:
    """The first problem (by line) as the error; the message lists every one."""
    first = found[0]
    more = [f"{path}" + (f":{p.line}" if p.line else "") + f": {p}" for p in found[1:]]
    return ScenarioError(path, first.line, first.column, "\n".join([str(first), *more]))


# The file's shape where it differs from the scenario's types


class NoiseFile(BaseModel):
    """``noise: {type: babble, snr_db: 10, seed: 0}``."""

    model_config = FILE_CONFIG

    type: Text
    snr_db: Annotated[float, between(-20, 60)]
    seed: Annotated[int, between(0, 2**31)] = 0

    @field_validator("type")
    @classmethod
    def _kind(cls, kind: str) -> str:
        if kind not in NOISE_KINDS:
            raise ValueError(f"must be one of {', '.join(NOISE_KINDS)}")
        return kind


class LineFile(BaseModel):
    """``line: {packet_loss: 0.02, loss_burst: 3, jitter_ms: 40, seed: 0}``."""

    model_config = FILE_CONFIG

    packet_loss: Annotated[float, between(0, 0.5)] = 0.0
    loss_burst: Annotated[float, between(1, 50)] = 1.0
    jitter_ms: Annotated[float, between(0, 1000)] = 0.0
    seed: Annotated[int, between(0, 2**31)] = 0


def _no_value(value: Any) -> bool:
    if value not in (None, True):
        raise ValueError("takes no value (write just 'hang_up')")
    return True


class StepFile(BaseModel):
    """One step as written: exactly one action, with what to expect."""

    model_config = FILE_CONFIG

    say: Text | None = None
    silence: Annotated[float, between(0.02, MAX_SILENCE_S)] | None = None
    press: Text | None = None
    barge_in: Text | None = None
    hang_up: Annotated[bool, BeforeValidator(_no_value)] = False
    expect: Expectations | None = None
    after_ms: Annotated[int, between(0, 30000)] | None = None
    timeout: Annotated[float, between(1, 300)] = DEFAULT_REPLY_TIMEOUT_S

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

    model_config = FILE_CONFIG

    name: Text | None = None
    description: Annotated[str, BeforeValidator(text_or_empty)] = ""
    caller: CallerSpec = CallerSpec()
    noise: NoiseFile | None = None
    line: LineFile | None = None
    greeting: Expectations | None = None
    steps: Annotated[tuple[StepFile, ...], AfterValidator(_non_empty)]
    tags: Texts = ()
