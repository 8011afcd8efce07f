"""Answers to an outbound opening's yes/no question, over the phone path: heard out or cut off?

``callagent bench answers --set scenarios/reminders/answers/held-out.yaml
--voices slt,kal``: for each answer x voice, the agent (started here, as ``callagent
simulate`` starts it) places one call through the simulator's fake Twilio; the callee says
"Hello?", hears the opening out, then says the answer -- an answer written ``"No, | I need
to cancel it."`` is said as two clips with a pause between them (0.4, 0.5, 0.6, 0.7 s in
turn) -- and hangs up once the agent's reply is over. Per call: **cut off** (the agent's
reply started, or it hung up, while the answer was still being said), **right** (the
agent's first decision after the answer is the expected one, in the act band),
**clarified** (the expected intent, asked "Did you want to ...?"), **wrong** (anything
else), and for a bare yes or no the reply latency at the phone (end of the answer to the
first bot audio; p50/p95). Figures are printed and saved as JSON; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from integrations.percentile import percentile
from simulator.outbound.callee import CalleeLog, Person, speech
from simulator.phone import CallEndedError, TwilioCallEmulator

DEFAULT_SET = Path("scenarios/reminders/answers/held-out.yaml")
PAUSES_S = (0.4, 0.5, 0.6, 0.7)
"""The silence between a yes or no and the rest (between the parts' voiced spans)."""
EDGE_S = 0.05
AGENT = "appointment_reminders"
EXPECTED = {
    "confirm": ("affirm", "confirm_appointment"),
    "no": ("deny",),
    "cancel": ("cancel_appointment",),
    "move": ("reschedule_appointment",),
    "wrong_person": ("wrong_person",),
    "opt_out": ("opt_out",),
}
"""What the agent must decide on each kind of answer (the NLU's intent)."""


@dataclass(frozen=True)
class Answer:
    """One callee answer: its parts (said with ``pause_s`` between them) and what it means."""

    parts: tuple[str, ...]
    expect: str
    pause_s: float

    @property
    def text(self) -> str:
        """The answer as written, with the pause as a space."""
        return " ".join(self.parts)

    @property
    def bare(self) -> bool:
        """A lone yes or no (one short part)."""
        return len(self.parts) == 1 and len(self.parts[0].split()) <= 2


def load_answers(path: Path) -> list[Answer]:
    """The answers of a held-out file (see ``scenarios/reminders/answers``)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for i, item in enumerate(data["answers"]):
        parts = tuple(p.strip() for p in str(item["say"]).split("|") if p.strip())
        if item["expect"] not in EXPECTED:
            raise ValueError(f"{path}: answer {i}: unknown expect {item['expect']!r}")
        out.append(Answer(parts, str(item["expect"]), PAUSES_S[i % len(PAUSES_S)]))
    return out


def answer_clip(answer: Answer, voice: str) -> bytes:
    """The answer as the callee says it: its parts with silence between them."""
    from integrations.speech.audio import PHONE_SAMPLE_RATE

    # each part keeps EDGE_S of its quiet edges: the silence between the voiced parts is pause_s
    gap = b"\x00\x00" * int(max(0.0, answer.pause_s - 2 * EDGE_S) * PHONE_SAMPLE_RATE)
    clips = [_trimmed(speech(part, voice, 1.0)) for part in answer.parts]
    return gap.join(clips)


def _trimmed(pcm: bytes) -> bytes:
    from integrations.speech.audio import PHONE_SAMPLE_RATE
    from simulator.phone import voiced_span

    span = voiced_span(pcm)
    if span is None:
        return pcm
    first, last = (int(t * PHONE_SAMPLE_RATE) * 2 for t in span)
    edge = int(EDGE_S * PHONE_SAMPLE_RATE) * 2
    return pcm[max(0, first - edge) : last + edge]


@dataclass(frozen=True, kw_only=True)
class AnsweringPerson(Person):
    """A person who hears the opening out, answers it, hears the reply out and hangs up."""

    answer: bytes = b""
    seen: dict[str, Any] = field(default_factory=dict, compare=False)

    async def play(
        self, call: TwilioCallEmulator, log: CalleeLog, *, greeting_ended_s: float | None
    ) -> None:
        """Hello, the opening, the answer (timed), the reply; then hang up."""
        try:
            after = (await call.say(self._clips[self.hello])).caller_end_s
            await self._await_turn(call, after)
            self.seen["said_at"] = call.now()
            turn = await call.say(self.answer)
            self.seen.update(onset=turn.caller_onset_s, end=turn.caller_end_s)
            await self._await_turn(call, turn.caller_end_s)
        except CallEndedError:
            pass
        finally:
            self.seen["bot"] = call.bot_utterances()
        if not call.closed:
            log.hung_up_by = "callee"
            await call.hang_up()


@dataclass
class Row:
    """One call's result."""

    answer: str
    expect: str
    voice: str
    pause_s: float
    bare: bool
    outcome: str = "error"
    decided: list[str] = field(default_factory=list)
    latency_ms: float | None = None
    disposition: str | None = None


def judge(answer: Answer, seen: dict[str, Any], turns: list[dict[str, Any]]) -> tuple[str, float]:
    """(outcome, latency s) of one call from the callee's timeline and the call record."""
    onset, end = seen.get("onset"), seen.get("end")
    if onset is None or end is None:
        # the agent hung up while the answer was being said (after a goodbye on its "Yes")
        return ("cut_off" if "said_at" in seen else "error"), -1.0
    bot = [s for s, _ in seen.get("bot", []) if s > onset + 0.05]
    latency = (bot[0] - end) if bot else -1.0
    if bot and bot[0] < end - 0.05:
        return "cut_off", latency
    decided = [t for t in turns if t.get("caller_text") and t.get("intent")]
    if not decided:
        return "wrong", latency
    first = decided[0]
    if first.get("intent") in EXPECTED[answer.expect]:
        return ("right" if first.get("band") == "act" else "clarified"), latency
    return "wrong", latency


async def run_one(target: Any, http: httpx.AsyncClient, answer: Answer, voice: str, n: int) -> Row:
    """One call: the agent dials the callee, who answers; read the record back."""
    from simulator.scenarios.outbound_runner import AgentApi

    row = Row(answer.text, answer.expect, voice, answer.pause_s, answer.bare)
    clip = await asyncio.to_thread(answer_clip, answer, voice)
    callee = AnsweringPerson(answer=clip, voice=voice)
    phone = f"+1555556{n:04d}"
    target.fake_twilio.dialer.register(phone, callee)
    api = AgentApi(http, target.base_url, target.operator_token)
    status, placed = await api.place(phone, AGENT, {"first_name": "Sam", "appointment": "Friday"})
    if status != 201:
        return row
    await target.fake_twilio.dialer.wait_for_end(str(placed["provider_call_id"]), timeout=120)
    attempt = await api.ended_attempt(str(placed["attempt_id"]), 20)
    row.disposition = attempt.get("disposition")
    record = await api.finished_record(str(attempt.get("call_id")), row.disposition, 20) or {}
    turns = list(record.get("turns", []))
    row.decided = [f"{t.get('intent')}/{t.get('band')}: {t.get('caller_text')}" for t in turns]
    row.outcome, latency = judge(answer, callee.seen, turns)
    row.latency_ms = round(latency * 1000) if latency >= 0 else None
    return row


def summary(rows: list[Row]) -> dict[str, Any]:
    """Outcome counts (all, paused answers), and bare yes/no reply latency p50/p95."""
    counts: dict[str, int] = {}
    paused: dict[str, int] = {}
    for r in rows:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
        if "|" in r.answer or not r.bare:
            paused[r.outcome] = paused.get(r.outcome, 0) + 1
    bare = [r.latency_ms for r in rows if r.bare and r.latency_ms is not None]
    return {
        "calls": len(rows),
        "outcomes": counts,
        "bare_latency_ms": {
            "n": len(bare),
            "p50": round(percentile(bare, 50)) if bare else None,
            "p95": round(percentile(bare, 95)) if bare else None,
        },
    }


async def main(args: argparse.Namespace) -> int:
    """Start the agent, place every call (``--calls-at-once`` at a time), print, save."""
    from simulator.local_agent import LocalAgent

    answers = load_answers(args.set)
    jobs = [(a, v) for v in args.voices.split(",") for a in answers]
    local = LocalAgent(mode="thread", use_environment=False)
    target = await local.start()
    gate = asyncio.Semaphore(args.calls_at_once)
    try:
        async with httpx.AsyncClient(timeout=30) as http:

            async def one(i: int, job: tuple[Answer, str]) -> Row:
                async with gate:
                    row = await run_one(target, http, job[0], job[1], i)
                print(f"{row.outcome:9} {row.latency_ms!s:>6} ms {row.voice} {row.answer}")
                return row

            rows = await asyncio.gather(*(one(i, j) for i, j in enumerate(jobs)))
    finally:
        await local.stop()
    data = {"summary": summary(list(rows)), "rows": [r.__dict__ for r in rows]}
    print(json.dumps(data["summary"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", type=Path, default=DEFAULT_SET)
    parser.add_argument("--voices", default="slt,kal")
    parser.add_argument("--calls-at-once", type=int, default=2)
    parser.add_argument("--json", type=Path)


def add_parser(kinds: argparse._SubParsersAction) -> None:
    """Register ``callagent bench answers``."""
    p = kinds.add_parser("answers", help="answers to an outbound opening's yes/no question")
    _arguments(p)
    p.set_defaults(func=lambda args: asyncio.run(main(args)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="answers to an outbound opening's question")
    _arguments(parser)
    sys.exit(asyncio.run(main(parser.parse_args())))
