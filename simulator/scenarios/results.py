"""What a simulated call produced: per-step figures, the server's events, and the checks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from integrations.percentile import latency_summary, percentile

Status = Literal["pass", "fail", "unverified"]


@dataclass
class Check:
    """One expectation, checked.

    Parameters:
        step: The step number (0 for the greeting).
        what: The expectation (``intent``, ``reply_contains``, ...).
        status: ``pass``, ``fail`` or ``unverified`` (the server did not expose it).
        expected: What was expected.
        actual: What was observed.
        line: Where the expectation is written in the scenario file.
    """

    step: int
    what: str
    status: Status
    expected: str
    actual: str
    line: int | None = None


@dataclass
class BargeIn:
    """The caller talked while the bot was speaking.

    Parameters:
        onset_s: The caller's voice onset (call time).
        bot_was_speaking: Whether bot audio was playing at the phone at the onset.
        bot_stopped_s: When the bot's audio stopped at the phone after the onset.
        clear_s: When Twilio's ``clear`` arrived after the onset.
        wire: ``twilio`` or ``sip`` (which has no ``clear``: the audio just stops).
    """

    onset_s: float
    bot_was_speaking: bool
    bot_stopped_s: float | None = None
    clear_s: float | None = None
    wire: str = "twilio"

    @property
    def stop_ms(self) -> float | None:
        """Caller onset to the bot's audio stopping at the phone."""
        if self.bot_stopped_s is None:
            return None
        return round((self.bot_stopped_s - self.onset_s) * 1000, 1)

    @property
    def clear_ms(self) -> float | None:
        """Caller onset to the ``clear`` message."""
        return None if self.clear_s is None else round((self.clear_s - self.onset_s) * 1000, 1)


@dataclass
class StepResult:
    """One step as it went (the greeting is step 0).

    Times are call times in seconds (since the stream started).
    """

    index: int
    action: str
    description: str
    started_s: float = 0.0
    caller_onset_s: float | None = None
    caller_end_s: float | None = None
    reply_start_s: float | None = None
    reply_end_s: float | None = None
    latency_ms: float | None = None
    """Caller end of speech (or last key press) to the first bot audio heard."""
    latency_kind: str = "speech"
    """``speech`` (after a spoken line) or ``dtmf`` (after key presses)."""
    barge_in: BargeIn | None = None
    snr_db: float | None = None
    heard: str = ""
    """What the caller heard in the reply, transcribed."""
    events: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None
    call_ended_by: str | None = None
    """Who had ended the call by the end of this step (``server``, ``network``, ``caller``)."""
    checks: list[Check] = field(default_factory=list)

    @property
    def server_latency(self) -> dict[str, Any] | None:
        """The server's own measurement of this turn (``latency`` event), if any."""
        for event in self.events:
            if event.get("type") == "latency" and event.get("kind") == "turn":
                return {"total_ms": event.get("total_ms"), "stages_ms": event.get("stages_ms")}
        return None

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        """This step's server events of one type."""
        return [e for e in self.events if e.get("type") == kind]


@dataclass
class CallResult:
    """One scenario call."""

    scenario: str
    name: str
    path: str
    call_sid: str = ""
    run: int = 1
    started_at: str = ""
    duration_s: float = 0.0
    ended_by: str | None = None
    error: str | None = None
    events_available: bool = False
    greeting: StepResult | None = None
    steps: list[StepResult] = field(default_factory=list)
    transfers: list[str] = field(default_factory=list)
    """``<Dial>`` targets of the REST redirects the agent made (when visible)."""
    hang_ups: int = 0
    """REST hang-ups the agent made (when visible)."""
    recording: str | None = None
    frames_lost: int = 0
    clears: int = 0
    marks_echoed: int = 0

    def all_steps(self) -> list[StepResult]:
        """The greeting (if any) then the steps."""
        return ([self.greeting] if self.greeting else []) + self.steps

    @property
    def checks(self) -> list[Check]:
        """Every check, in order."""
        return [c for s in self.all_steps() for c in s.checks]

    @property
    def passed(self) -> bool:
        """No failed check and no error."""
        return self.error is None and all(c.status != "fail" for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = dataclasses.asdict(self)
        datas = ([out["greeting"]] if self.greeting else []) + out["steps"]
        for step, data in zip(self.all_steps(), datas, strict=True):
            data["server_latency"] = step.server_latency
            if step.barge_in is not None:
                data["barge_in"]["stop_ms"] = step.barge_in.stop_ms
                data["barge_in"]["clear_ms"] = step.barge_in.clear_ms
        out["passed"] = self.passed
        return out


def summarize(calls: list[CallResult]) -> dict[str, Any]:
    """Totals over calls: checks by status, latency and barge-in percentiles, server stages."""
    checks = [c for call in calls for c in call.checks]
    steps = [s for call in calls for s in call.steps]
    speech = [s.latency_ms for s in steps if s.latency_kind == "speech"]
    dtmf = [s.latency_ms for s in steps if s.latency_kind == "dtmf"]
    barge = [s.barge_in.stop_ms for s in steps if s.barge_in and s.barge_in.stop_ms is not None]
    stages: dict[str, list[float]] = {}
    for s in steps:
        server = s.server_latency
        for name, value in ((server or {}).get("stages_ms") or {}).items():
            if isinstance(value, int | float):
                stages.setdefault(name, []).append(float(value))
    return {
        "calls": len(calls),
        "calls_passed": sum(c.passed for c in calls),
        "checks": {
            status: sum(c.status == status for c in checks)
            for status in ("pass", "fail", "unverified")
        },
        "turn_latency": latency_summary(speech),
        "dtmf_latency": latency_summary(dtmf),
        "barge_in_stop": latency_summary(barge),
        "server_stages_p50_ms": {k: round(percentile(v, 50), 1) for k, v in stages.items() if v},
    }
