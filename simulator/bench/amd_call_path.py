"""``callagent bench amd``: each answer through the real call path.

The agent is started here (:class:`~simulator.local_agent.LocalAgent`, as ``callagent simulate``
starts it for outbound scenarios), dialling through the simulator's fake Twilio REST API.
For each generated answer a callee that plays exactly that answer
(:class:`~simulator.bench.amd_callee.AnswerCallee`) is registered on its own number, and
the call is placed as an operator places one: ``POST /api/calls/outbound`` for the
reminder agent. The fake rings the callee, posts the signed answer webhook, opens the
Media Stream back to the agent and the callee plays. The verdict, its time and the
outcome are read from the agent's call record (``GET /api/calls/{call_id}``: ``amd_verdict``,
``amd_ms``, ``disposition``); when the opening or the message started is what the callee's
phone heard. Twilio's own AMD is off unless ``provider_amd`` says otherwise, so the
agent's detector is what is measured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from simulator.bench.amd_answers import Answer
from simulator.bench.amd_callee import MAX_CALL_S, AnswerCallee, phone_times
from simulator.bench.amd_report import AnswerResult
from simulator.fake_twilio import FakeTwilioRest
from simulator.local_agent import LocalAgent
from simulator.outbound.callee import speech
from simulator.scenarios.outbound_runner import AgentApi
from simulator.voices.caller_voice import DEFAULT_VOICE

AGENT = "appointment_reminders"
SYLLABLES = ("Ka", "Lo", "Mi", "Ra", "Te", "Su", "No", "Vi", "Da", "Je")
APPOINTMENT = "Friday at 10 am"
SETTLE_S = 20.0
"""After the call: longest wait for the attempt to end and its record to be complete."""
RING_S = 0.3


@dataclass(frozen=True)
class CallPathOptions:
    """How the answers are called.

    Parameters:
        concurrency: Calls in flight at once.
        provider_amd: ``CALLAGENT_OUTBOUND_MACHINE_DETECTION`` (``off``: only the agent's
            own detector; ``DetectMessageEnd``/``Enable``: Twilio's async AMD joins it).
        server: ``process`` (the agent in a child process) or ``thread`` (in this one).
        reply: What a person says once after the opening (None: they hang up).
        use_environment: Configure the agent from ``.env`` and the environment too.
        verbose: Let the agent's log through.
    """

    concurrency: int = 4
    provider_amd: str = "off"
    server: str = "process"
    reply: str | None = None
    use_environment: bool = True
    verbose: bool = False


@dataclass
class CallPathRun:
    """The run as a whole: wall time, calls per minute, the most calls at once."""

    wall_s: float = 0.0
    most_in_flight: int = 0
    _in_flight: int = 0

    def as_dict(self, calls: int) -> dict[str, Any]:
        """JSON-ready."""
        per_min = calls / self.wall_s * 60 if self.wall_s else None
        return {
            "wall_s": round(self.wall_s, 1),
            "calls_per_minute": None if per_min is None else round(per_min, 1),
            "most_in_flight": self.most_in_flight,
        }


def first_name_for(i: int) -> str:
    """A first name of its own for the i-th answer ("Kalo", "Mira"...).

    Every contact of a campaign has a name of their own, so the opening ("Hi Kalo, ...")
    is never in the TTS's cache already, as it would be if a few names were reused.
    """
    n = len(SYLLABLES)
    name = SYLLABLES[i % n] + SYLLABLES[(i // n) % n].lower()
    return name + SYLLABLES[i // n**2 % n].lower() if i >= n * n else name


def number_for(i: int) -> str:
    """The i-th answer's phone number (fictional 555 numbers)."""
    return f"+1555555{1000 + i:04d}"


async def measure_call_path(
    answers: Sequence[Answer],
    options: CallPathOptions,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[AnswerResult], CallPathRun]:
    """Call every answer through the agent started here; the results in the answers' order."""
    reply = None
    if options.reply:
        reply = await asyncio.to_thread(speech, options.reply, DEFAULT_VOICE, 1.0)
    local = LocalAgent(
        mode=options.server,
        env={"CALLAGENT_OUTBOUND_MACHINE_DETECTION": options.provider_amd},
        verbose=options.verbose,
        use_environment=options.use_environment,
    )
    target = await local.start()
    run = CallPathRun()
    done = 0
    slots = asyncio.Semaphore(max(1, options.concurrency))
    started = time.monotonic()
    try:
        assert target.base_url and target.operator_token
        async with httpx.AsyncClient(timeout=30) as http:
            api = AgentApi(http, target.base_url, target.operator_token)

            async def one(i: int, answer: Answer) -> AnswerResult:
                nonlocal done
                async with slots:
                    run._in_flight += 1
                    run.most_in_flight = max(run.most_in_flight, run._in_flight)
                    try:
                        result = await call_answer(answer, i, local.rest, api, reply)
                    finally:
                        run._in_flight -= 1
                done += 1
                if progress is not None:
                    progress(done, len(answers))
                return result

            results = await asyncio.gather(*(one(i, a) for i, a in enumerate(answers)))
    finally:
        run.wall_s = time.monotonic() - started
        await local.stop()
    return list(results), run


async def call_answer(
    answer: Answer, i: int, rest: FakeTwilioRest, api: AgentApi, reply: bytes | None
) -> AnswerResult:
    """The i-th answer: register its callee, have the agent call it, read what came of it."""
    callee = AnswerCallee(answer=answer, reply=reply, ring_s=RING_S)
    number = number_for(i)
    rest.dialer.register(number, callee)
    variables = {"first_name": first_name_for(i), "appointment": APPOINTMENT}
    try:
        status, placed = await api.place(number, AGENT, variables)
        sid, attempt_id = placed.get("provider_call_id"), placed.get("attempt_id")
        if status != 201 or not sid or not attempt_id:
            return _unmeasured(answer, f"placing refused: HTTP {status}")
        call = await rest.dialer.wait_for_end(str(sid), timeout=MAX_CALL_S + 30)
        attempt = await api.ended_attempt(str(attempt_id), SETTLE_S)
        call_id = attempt.get("call_id")
        record = None
        if call_id:
            record = await api.finished_record(str(call_id), attempt.get("disposition"), SETTLE_S)
    except (httpx.HTTPError, TimeoutError) as e:
        return _unmeasured(answer, type(e).__name__)
    if call.error is not None:
        return _unmeasured(answer, f"call broke down: {call.error.split(':')[0]}")
    if record is None:
        return _unmeasured(answer, "no call record")
    times = phone_times(answer, callee.played)
    amd_ms = record.get("amd_ms")
    return AnswerResult(
        name=answer.name,
        truth=answer.truth,
        kind=answer.kind,
        noise=answer.noise,
        voice=answer.voice,
        verdict=str(record.get("amd_verdict") or "none"),
        source="",
        decided_after_s=None if amd_ms is None else round(float(amd_ms) / 1000, 3),
        opening_after_speech_s=times.opening_after_hello_s,
        withdrawn=None,
        openings_held=None,
        disposition=record.get("disposition") or attempt.get("disposition"),
        message_after_beep_s=times.message_after_beep_s,
        message_after_greeting_s=times.message_after_greeting_s,
        bot_over_callee_s=times.bot_over_callee_s,
    )


def _unmeasured(answer: Answer, error: str) -> AnswerResult:
    return AnswerResult(
        name=answer.name,
        truth=answer.truth,
        kind=answer.kind,
        noise=answer.noise,
        voice=answer.voice,
        verdict="none",
        source="",
        decided_after_s=None,
        opening_after_speech_s=None,
        withdrawn=None,
        openings_held=None,
        disposition=None,
        message_after_beep_s=None,
        error=error,
    )
