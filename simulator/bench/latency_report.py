"""What ``bench latency`` measured: the turns, the summary and how they are printed."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from integrations.percentile import latency_summary, percentile
from simulator.replies import answered_share


@dataclass
class TurnResult:
    """One measured caller turn."""

    call: int
    question: str
    latency_ms: float | None
    caller_speech_ms: float
    reply: str | None = None
    """The start of the bot's reply as heard at the phone (transcribed after the calls)."""
    answered: bool | None = None
    """Whether the reply was the answer the agent's file gives for the question's intent."""


@dataclass
class LatencyReport:
    """Everything ``bench latency`` measured."""

    url: str
    wire: str = "twilio"
    """``twilio`` (Media Streams) or ``sip`` (INVITE + RTP)."""
    turns: list[TurnResult] = field(default_factory=list)
    conditions: dict[str, Any] = field(default_factory=dict)
    greeting_ms: list[float] = field(default_factory=list)
    server_turns: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Percentiles of the phone-side latency, and medians of the server stages."""
        values = [t.latency_ms for t in self.turns if t.latency_ms is not None]
        out: dict[str, Any] = {
            "turns": len(self.turns),
            "answered": len(values),
            "unanswered": len(self.turns) - len(values),
        }
        out.update(_stats(values))
        answering, checked = answered_share([t.answered for t in self.turns])
        if checked:
            out["replies_answering"] = answering
            out["replies_checked"] = checked
        if self.server_turns:
            totals = [t["total_ms"] for t in self.server_turns]
            stages: dict[str, list[float]] = {}
            for t in self.server_turns:
                for name, value in t["stages_ms"].items():
                    if isinstance(value, int | float):
                        stages.setdefault(name, []).append(float(value))
            out["server"] = {
                "turns": len(totals),
                **_stats(totals),
                "stages_p50_ms": {k: round(percentile(v, 50), 1) for k, v in stages.items()},
            }
        return out

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "bench": "latency",
            "url": self.url,
            "wire": self.wire,
            "conditions": self.conditions,
            "summary": self.summary(),
            "turns": [dataclasses.asdict(t) for t in self.turns],
            "greeting_ms": self.greeting_ms,
            "server_turns": self.server_turns,
        }


def _stats(values: list[float]) -> dict[str, float | int | None]:
    summary = latency_summary(values)
    return {k: summary[k] for k in ("p50_ms", "p95_ms", "max_ms", "mean_ms")}


def print_comparison(twilio: LatencyReport, sip: LatencyReport) -> None:
    """Both wires' turn latency at the caller, side by side."""
    a, b = twilio.summary(), sip.summary()

    def ms(value: Any) -> str:
        return (
            "-"
            if value is None or (isinstance(value, float) and math.isnan(value))
            else (f"{value:.0f} ms")
        )

    print()
    print(f"{'turn latency at the caller':<28}{'Twilio':>12}{'SIP':>12}")
    for key in ("p50_ms", "p95_ms", "max_ms"):
        print(f"  {key[:-3]:<26}{ms(a.get(key)):>12}{ms(b.get(key)):>12}")
    print(f"  {'answered':<26}{a['answered']:>9}/{a['turns']:<2}{b['answered']:>9}/{b['turns']:<2}")


def print_report(report: LatencyReport) -> None:
    """The figures of one wire."""
    s = report.summary()

    def ms(value: float | None) -> str:
        return "-" if value is None or math.isnan(value) else f"{value:.0f} ms"

    print()
    wire = "SIP, G.711 over RTP" if report.wire == "sip" else "Twilio Media Streams"
    print(f"caller end of speech -> first bot audio at the phone ({wire})")
    print(f"  turns answered: {s['answered']}/{s['turns']}")
    print(
        f"  p50 {ms(s['p50_ms'])}   p95 {ms(s['p95_ms'])}   max {ms(s['max_ms'])}   "
        f"mean {ms(s['mean_ms'])}"
    )
    if "replies_checked" in s:
        print(
            f"  replies that answered the question: {s['replies_answering']}/"
            f"{s['replies_checked']} (the others: clarifying questions, repair prompts, "
            "hand-offs)"
        )
    if report.greeting_ms:
        print(f"  greeting heard after connect: p50 {ms(percentile(report.greeting_ms, 50))}")
    server = s.get("server")
    if server:
        print(f"server-side (UserBotLatencyObserver, {server['turns']} turns)")
        print(
            f"  p50 {ms(server['p50_ms'])}   p95 {ms(server['p95_ms'])}   "
            f"max {ms(server['max_ms'])}"
        )
        for name, value in server["stages_p50_ms"].items():
            print(f"  {name:<24} p50 {ms(value)}")
