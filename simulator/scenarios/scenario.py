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

Errors name the file, line and column of the offending node (the loader keeps PyYAML's
marks), e.g. ``calls.yaml:7:9: steps[1]: unknown step 'sya'``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from simulator.phone import DTMF_DIGITS, LineConditions
from simulator.voices.caller_voice import DEFAULT_VOICE, check_voice
from simulator.voices.noise import NOISE_KINDS, NoiseSpec

ACTIONS = ("say", "silence", "press", "barge_in", "hang_up")
BANDS = ("act", "clarify", "repair")
DEFAULT_REPLY_TIMEOUT_S = 20.0
MAX_SILENCE_S = 120.0


class ScenarioError(ValueError):
    """A scenario file is malformed; the message names the file and the line."""

    def __init__(self, path: str, line: int | None, column: int | None, message: str):
        self.path = path
        self.line = line
        self.column = column
        self.detail = message
        where = path if line is None else f"{path}:{line}" + (f":{column}" if column else "")
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class EscalationExpectation:
    """An escalation (or none) the step must cause.

    Parameters:
        expected: Whether the call must escalate.
        trigger: The trigger it must be (``explicit_request``, ``out_of_scope``, ...).
        reason: Text the escalation's reason must contain.
    """

    expected: bool = True
    trigger: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
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
        line: Where the expectations are written (for messages).
    """

    intent: tuple[str, ...] = ()
    band: str | None = None
    reply_contains: tuple[tuple[str, ...], ...] = ()
    reply_excludes: tuple[str, ...] = ()
    no_reply: bool | None = None
    interrupted: bool | None = None
    resumes: bool | None = None
    escalation: EscalationExpectation | None = None
    call_ends: bool | None = None
    max_latency_ms: float | None = None
    line: int | None = None

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


@dataclass(frozen=True)
class CallerSpec:
    """The simulated caller's voice and number."""

    voice: str = DEFAULT_VOICE
    rate: float = 1.0
    number: str = "+15555550198"


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
        ScenarioError: naming the line of the first problem.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = " ".join(x for x in (e.context, e.problem) if x) or "invalid YAML"
        raise ScenarioError(
            path,
            mark.line + 1 if mark else None,
            mark.column + 1 if mark else None,
            f"invalid YAML: {problem}",
        ) from None
    except yaml.YAMLError as e:
        raise ScenarioError(path, None, None, f"invalid YAML: {e}") from None
    if root is None:
        raise ScenarioError(path, 1, None, "the file is empty: a scenario needs 'steps'")
    return _Parser(path).scenario(root)


class _Parser:
    def __init__(self, path: str):
        self.path = path

    # Node helpers

    def fail(self, node: Node | None, message: str) -> ScenarioError:
        if node is None:
            return ScenarioError(self.path, None, None, message)
        return ScenarioError(
            self.path, node.start_mark.line + 1, node.start_mark.column + 1, message
        )

    def mapping(self, node: Node, what: str, allowed: Sequence[str]) -> dict[str, Node]:
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{what} must be a mapping (key: value lines)")
        out: dict[str, Node] = {}
        keys: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node)
            if not isinstance(key, str):
                raise self.fail(key_node, f"{what}: keys must be words, not {key!r}")
            if key in out:
                raise self.fail(key_node, f"{what}: {key!r} is given twice")
            if key not in allowed:
                raise self.fail(
                    key_node, f"{what}: unknown key {key!r} (expected one of {', '.join(allowed)})"
                )
            out[key] = value_node
            keys[key] = key_node
        return out

    def scalar(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            return node
        return yaml.SafeLoader("").construct_object(node)  # type: ignore[no-untyped-call]

    def string(self, node: Node, what: str, *, allow_empty: bool = False) -> str:
        value = self.scalar(node) if isinstance(node, ScalarNode) else None
        if isinstance(value, bool) or value is None and not allow_empty:
            raise self.fail(node, f"{what} must be text")
        if not isinstance(value, str | int | float):
            raise self.fail(node, f"{what} must be text")
        text = str(value).strip()
        if not text and not allow_empty:
            raise self.fail(node, f"{what} must not be empty")
        return text

    def number(self, node: Node, what: str, low: float, high: float) -> float:
        value = self.scalar(node) if isinstance(node, ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(node, f"{what} must be a number")
        if not low <= float(value) <= high:
            raise self.fail(node, f"{what} must be between {low:g} and {high:g}")
        return float(value)

    def boolean(self, node: Node, what: str) -> bool:
        value = self.scalar(node) if isinstance(node, ScalarNode) else None
        if not isinstance(value, bool):
            raise self.fail(node, f"{what} must be true or false")
        return value

    def strings(self, node: Node, what: str) -> list[str]:
        if isinstance(node, SequenceNode):
            return [self.string(n, f"{what} item") for n in node.value]
        return [self.string(node, what)]

    # Sections

    def scenario(self, root: Node) -> Scenario:
        top = self.mapping(
            root,
            "the scenario",
            ("name", "description", "caller", "noise", "line", "greeting", "steps", "tags"),
        )
        if "steps" not in top:
            raise self.fail(root, "the scenario has no 'steps'")
        steps_node = top["steps"]
        if not isinstance(steps_node, SequenceNode) or not steps_node.value:
            raise self.fail(steps_node, "'steps' must be a non-empty list of steps")
        steps = tuple(self.step(n, i) for i, n in enumerate(steps_node.value, 1))
        for prev, step in zip(steps, steps[1:], strict=False):
            if prev.action == "hang_up":
                raise self.fail(
                    steps_node.value[step.index - 1], f"steps[{step.index}]: comes after hang_up"
                )
        name = self.string(top["name"], "name") if "name" in top else Path(self.path).stem
        return Scenario(
            name=name,
            path=self.path,
            steps=steps,
            description=(
                self.string(top["description"], "description", allow_empty=True)
                if "description" in top
                else ""
            ),
            caller=self.caller(top["caller"]) if "caller" in top else CallerSpec(),
            noise=self.noise(top["noise"]) if "noise" in top else None,
            line=self.line(top["line"]) if "line" in top else None,
            greeting=self.expect(top["greeting"], "greeting") if "greeting" in top else None,
            tags=tuple(self.strings(top["tags"], "tags")) if "tags" in top else (),
        )

    def caller(self, node: Node) -> CallerSpec:
        m = self.mapping(node, "caller", ("voice", "rate", "number"))
        voice = self.string(m["voice"], "caller.voice") if "voice" in m else DEFAULT_VOICE
        problem = check_voice(voice)
        if problem:
            raise self.fail(m["voice"], f"caller.voice: {problem}")
        rate = self.number(m["rate"], "caller.rate", 0.5, 2.0) if "rate" in m else 1.0
        number = self.string(m["number"], "caller.number") if "number" in m else CallerSpec.number
        return CallerSpec(voice, rate, number)

    def noise(self, node: Node) -> NoiseSpec:
        m = self.mapping(node, "noise", ("type", "snr_db", "seed"))
        if "type" not in m:
            raise self.fail(node, f"noise needs a type ({', '.join(NOISE_KINDS)})")
        kind = self.string(m["type"], "noise.type")
        if kind not in NOISE_KINDS:
            raise self.fail(m["type"], f"noise.type must be one of {', '.join(NOISE_KINDS)}")
        if "snr_db" not in m:
            raise self.fail(node, "noise needs snr_db (speech over noise, in dB)")
        snr = self.number(m["snr_db"], "noise.snr_db", -20, 60)
        seed = int(self.number(m["seed"], "noise.seed", 0, 2**31)) if "seed" in m else 0
        return NoiseSpec(kind, snr, seed)

    def line(self, node: Node) -> LineConditions:
        m = self.mapping(node, "line", ("packet_loss", "loss_burst", "jitter_ms", "seed"))
        return LineConditions(
            packet_loss=self.number(m["packet_loss"], "line.packet_loss", 0, 0.5)
            if "packet_loss" in m
            else 0.0,
            loss_burst=self.number(m["loss_burst"], "line.loss_burst", 1, 50)
            if "loss_burst" in m
            else 1.0,
            jitter_ms=self.number(m["jitter_ms"], "line.jitter_ms", 0, 1000)
            if "jitter_ms" in m
            else 0.0,
            seed=int(self.number(m["seed"], "line.seed", 0, 2**31)) if "seed" in m else 0,
        )

    def step(self, node: Node, index: int) -> Step:
        where = f"steps[{index}]"
        line = node.start_mark.line + 1
        if isinstance(node, ScalarNode):
            action = self.string(node, where)
            if action != "hang_up":
                raise self.fail(
                    node, f"{where}: unknown step {action!r} (a bare step can only be hang_up)"
                )
            return Step(index, "hang_up", line=line)
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{where} must be a mapping like 'say: Hello'")
        m = self.mapping(node, where, (*ACTIONS, "expect", "after_ms", "timeout"))
        actions = [a for a in ACTIONS if a in m]
        if len(actions) != 1:
            found = f"{', '.join(actions)}" if actions else "none"
            raise self.fail(
                node, f"{where}: needs exactly one of {', '.join(ACTIONS)} (found {found})"
            )
        action = actions[0]
        value = m[action]
        kwargs: dict[str, Any] = {}
        if action in ("say", "barge_in"):
            kwargs["text"] = self.string(value, f"{where}.{action}")
        elif action == "silence":
            kwargs["seconds"] = self.number(value, f"{where}.silence", 0.02, MAX_SILENCE_S)
        elif action == "press":
            digits = self.string(value, f"{where}.press")
            bad = sorted({d for d in digits if d not in DTMF_DIGITS})
            if bad:
                keys = "".join(bad)
                raise self.fail(value, f"{where}.press: {keys!r} are not keys (0-9 * # A-D)")
            kwargs["digits"] = digits
        elif action == "hang_up" and self.scalar(value) not in (None, True):
            raise self.fail(value, f"{where}.hang_up takes no value")
        if "after_ms" in m:
            if action != "barge_in":
                raise self.fail(m["after_ms"], f"{where}: after_ms only applies to barge_in")
            kwargs["after_ms"] = int(self.number(m["after_ms"], f"{where}.after_ms", 0, 30000))
        elif action == "barge_in":
            kwargs["after_ms"] = 800
        if "timeout" in m:
            kwargs["timeout_s"] = self.number(m["timeout"], f"{where}.timeout", 1, 300)
        if "expect" in m:
            if action == "hang_up":
                raise self.fail(m["expect"], f"{where}: hang_up has nothing to expect")
            kwargs["expect"] = self.expect(m["expect"], f"{where}.expect")
            barge_only = [
                k for k in ("interrupted", "resumes") if getattr(kwargs["expect"], k) is not None
            ]
            if barge_only and action != "barge_in":
                raise self.fail(
                    m["expect"], f"{where}.expect: '{barge_only[0]}' only applies to barge_in steps"
                )
        return Step(index, action, line=line, **kwargs)

    def expect(self, node: Node, where: str) -> Expectations:
        allowed = (
            "intent",
            "band",
            "reply_contains",
            "reply_excludes",
            "no_reply",
            "interrupted",
            "resumes",
            "escalation",
            "call_ends",
            "max_latency_ms",
        )
        m = self.mapping(node, where, allowed)
        kwargs: dict[str, Any] = {"line": node.start_mark.line + 1}
        if "intent" in m:
            kwargs["intent"] = tuple(self.strings(m["intent"], f"{where}.intent"))
        if "band" in m:
            band = self.string(m["band"], f"{where}.band")
            if band not in BANDS:
                raise self.fail(m["band"], f"{where}.band must be one of {', '.join(BANDS)}")
            kwargs["band"] = band
        if "reply_contains" in m:
            kwargs["reply_contains"] = self.word_groups(m["reply_contains"], where)
        if "reply_excludes" in m:
            kwargs["reply_excludes"] = tuple(
                w.lower() for w in self.strings(m["reply_excludes"], f"{where}.reply_excludes")
            )
        for key in ("no_reply", "interrupted", "resumes", "call_ends"):
            if key in m:
                kwargs[key] = self.boolean(m[key], f"{where}.{key}")
        if "escalation" in m:
            kwargs["escalation"] = self.escalation(m["escalation"], f"{where}.escalation")
        if "max_latency_ms" in m:
            kwargs["max_latency_ms"] = self.number(
                m["max_latency_ms"], f"{where}.max_latency_ms", 1, 60000
            )
        expectations = Expectations(**kwargs)
        if expectations.no_reply and (expectations.reply_contains or expectations.intent):
            raise self.fail(node, f"{where}: no_reply contradicts reply_contains/intent")
        return expectations

    def word_groups(self, node: Node, where: str) -> tuple[tuple[str, ...], ...]:
        groups: list[tuple[str, ...]] = []
        items = node.value if isinstance(node, SequenceNode) else [node]
        for item in items:
            if isinstance(item, SequenceNode):
                words = [self.string(n, f"{where}.reply_contains item") for n in item.value]
                if not words:
                    raise self.fail(item, f"{where}.reply_contains: an empty group")
            else:
                words = [self.string(item, f"{where}.reply_contains item")]
            groups.append(tuple(w.lower() for w in words))
        return tuple(groups)

    def escalation(self, node: Node, where: str) -> EscalationExpectation:
        if isinstance(node, ScalarNode):
            value = self.scalar(node)
            if isinstance(value, bool):
                return EscalationExpectation(expected=value)
            return EscalationExpectation(trigger=self.string(node, where))
        m = self.mapping(node, where, ("trigger", "reason"))
        return EscalationExpectation(
            trigger=self.string(m["trigger"], f"{where}.trigger") if "trigger" in m else None,
            reason=self.string(m["reason"], f"{where}.reason").lower() if "reason" in m else None,
        )


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
