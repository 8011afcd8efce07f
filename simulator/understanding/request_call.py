"""One call of ``callagent bench understanding``: a request said to the agent, and what it did.

The caller waits for the greeting to end, says the context line (if the request has one)
and hears its reply out, says the request (two sentences with a natural pause between
them), then listens to the start of the reply (:func:`talk`). What the agent made of the
request is then read from the call's events and record (:func:`read_back`), never from log
text. :mod:`simulator.understanding.bench` plans the calls and runs them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from simulator.events_client import EventsClient
from simulator.understanding.outcomes import read_call, request_transcript
from simulator.understanding.requests import (
    CallerRequest,
)
from simulator.understanding.results import CLEAN, RequestCall

GREETING_TIMEOUT_S = 30.0
REPLY_TIMEOUT_S = 15.0
LISTEN_S = 3.0
"""The caller listens to at most this much of the reply (the decision is made by then)."""
RECORD_WAIT_S = 5.0


@dataclass(frozen=True)
class Condition:
    """The caller's background: clean, or noise at an SNR."""

    noise: str | None = None
    snr_db: float | None = None

    @property
    def name(self) -> str:
        """``clean`` or ``babble@10dB``."""
        return CLEAN if self.noise is None else f"{self.noise}@{self.snr_db:g}dB"


@dataclass(frozen=True)
class Job:
    """One call to place: a request, a voice, a condition."""

    request: CallerRequest
    voice: str
    condition: Condition
    seed: int
    hand_off_intents: frozenset[str] = frozenset()
    """The agent's intents a hand-off to a person serves (a hand-off on any other is wrong)."""


def phone_script(request: CallerRequest) -> list[str]:
    """What the caller says on a request's call, in order: its context line, then the request.

    Every line but the last is said and answered in full before the next; the last one is
    the request, whose outcome the call measures.
    """
    return [request.context, request.text] if request.context else [request.text]


@dataclass
class Heard:
    """What a call gave at the phone, before its events and record are read."""

    row: RequestCall
    events: EventsClient | None = None
    log: list[dict[str, Any]] = field(default_factory=list)
    greeting_s: float | None = None
    context_s: tuple[float, float] | None = None
    """When the context line was said (onset, end), if the request has one."""
    request_said: bool = False
    """The request went out (the call had not ended before it)."""
    onset_s: float = 0.0
    end_s: float = 0.0


async def talk(
    target: Any,
    job: Job,
    clips: Mapping[tuple[str, str], bytes],
    http: httpx.AsyncClient,
    *,
    reply_timeout_s: float = REPLY_TIMEOUT_S,
    listen_s: float = LISTEN_S,
) -> Heard:
    """The call itself: wait for the greeting, say the script, listen; never raises.

    The script (:func:`phone_script`) is the request, after its context line if it has
    one: the context line is said, and its reply heard out, before the request.
    """
    from integrations.speech.audio import PHONE_SAMPLE_RATE
    from simulator.phone import CallEndedError, voiced_span

    request = job.request
    *before, _ = phone_script(request)
    heard = Heard(
        RequestCall(
            request.text,
            request.intent,
            request.style,
            job.voice,
            job.condition.name,
            context=request.context,
        )
    )
    row = heard.row
    clip = clips[(request.text, job.voice)]
    span = voiced_span(clip) or (0.0, len(clip) / 2 / PHONE_SAMPLE_RATE)
    row.speech_ms = round((span[1] - span[0]) * 1000, 1)
    call = None
    try:
        call = await _dial(target, job)
        heard.events = EventsClient(target, call.call_sid, http)
        heard.greeting_s = await call.wait_for_bot_speech_start(timeout=GREETING_TIMEOUT_S)
        await wait_for_greeting_end(call, heard.events, heard.log)
        for line in before:
            try:
                said = await call.say(clips[(line, job.voice)])
                heard.context_s = (said.caller_onset_s, said.caller_end_s)
                await wait_for_reply(
                    call, heard.events, heard.log, after=said.caller_end_s, timeout=reply_timeout_s
                )
            except TimeoutError:
                row.error = "TimeoutError: the agent did not answer the context line in time"
                raise
        # where the request will sit on the call's timeline (if the agent hangs up on
        # the caller mid-request, say() never returns a measurement)
        start = call.now()
        heard.onset_s, heard.end_s = start + span[0], start + span[1]
        heard.request_said = True
        turn = await call.say(clip)
        heard.onset_s, heard.end_s = turn.caller_onset_s, turn.caller_end_s
        try:
            await call.wait_for_bot_speech_start(timeout=reply_timeout_s, after=heard.end_s)
            await call.wait_for_bot_silence(0.8, timeout=listen_s)
        except TimeoutError:
            pass
        if turn.latency_s is not None:
            row.latency_ms = round(turn.latency_s * 1000, 1)
    except (CallEndedError, TimeoutError) as e:
        if heard.greeting_s is None or not isinstance(e, CallEndedError):
            row.error = row.error or f"{type(e).__name__}: {e}"
        elif not heard.request_said:
            row.error = "CallEndedError: the call ended before the request was said"
    except (OSError, httpx.HTTPError) as e:
        row.error = f"{type(e).__name__}: {e}"
    finally:
        if call is not None:
            await call.hang_up()
            if target.rest is not None:
                target.rest.unregister(call.call_sid)
    return heard


async def read_back(target: Any, job: Job, heard: Heard, http: httpx.AsyncClient) -> RequestCall:
    """Read the call's outcome from its events, and the transcript from its record."""
    from simulator.bench.speech_engines import word_errors

    row, events = heard.row, heard.events
    if events is None or heard.greeting_s is None or not heard.request_said:
        return row
    log = heard.log + await events.drain(timeout_s=10.0)
    if not events.answered:
        row.error = row.error or f"no events ({events.problem or 'the call was not found'})"
        return row
    row.call_id = events.call_id
    row.events = log
    reading = read_call(
        job.request.intent,
        log,
        greeting_heard_s=heard.greeting_s,
        caller_onset_s=heard.onset_s,
        caller_end_s=heard.end_s,
        hand_off_intents=job.hand_off_intents,
    )
    row.outcome = reading.outcome.value
    row.cut_off = reading.cut_off
    row.fragmented = reading.fragmented
    row.timeline_s = {
        "greeting": round(heard.greeting_s, 3),
        "onset": round(heard.onset_s, 3),
        "end": round(heard.end_s, 3),
    }
    if heard.context_s is not None:
        row.timeline_s["context_onset"] = round(heard.context_s[0], 3)
        row.timeline_s["context_end"] = round(heard.context_s[1], 3)
        context = reading.before
        if context is not None and context.at_s >= heard.context_s[0]:
            row.context_intent, row.context_band = context.intent, context.band
    if reading.cut_at_s is not None:
        row.cut_after_ms = round((reading.cut_at_s - heard.onset_s) * 1000, 1)
    if reading.decision is not None:
        row.decided_intent = reading.decision.intent
        row.band = reading.decision.band
        row.confidence = reading.decision.confidence
    turns = await _record_turns(target, events.call_id, http)
    if turns is not None:
        row.transcript = request_transcript(turns, reading.request_decisions)
        if row.transcript is not None:
            row.word_errors, row.words = word_errors(job.request.text, row.transcript)
    return row


WARM_UP_TEXT = "Hello?"


async def warm_up(target: Any) -> None:
    """One call before the measured ones, so none of them pays for cold caches."""
    from simulator.phone import CallEndedError
    from simulator.understanding.voices import spoken

    clip = await asyncio.to_thread(spoken, WARM_UP_TEXT, "slt")
    job = Job(CallerRequest(text=WARM_UP_TEXT, intent="warm_up"), "slt", Condition(), 0)
    async with httpx.AsyncClient() as http:
        call = await _dial(target, job)
        try:
            await call.wait_for_bot_speech_start(timeout=GREETING_TIMEOUT_S)
            await wait_for_greeting_end(call, EventsClient(target, call.call_sid, http), [])
            turn = await call.say(clip)
            await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT_S, after=turn.caller_end_s)
        except (CallEndedError, TimeoutError):
            pass
        finally:
            await call.hang_up()
            if target.rest is not None:
                target.rest.unregister(call.call_sid)


async def wait_for_greeting_end(call: Any, events: EventsClient, log: list[dict[str, Any]]) -> None:
    """Wait until the greeting has been said: the agent's bot audio stopped, then 1 s quiet.

    Silence at the phone alone is not enough: under load the greeting's audio can
    pause for a second mid-sentence. The agent's own ``bot_stopped`` event says it is
    done (its events are added to ``log``).

    Raises:
        TimeoutError: the greeting did not end in time.
    """
    await _wait_for_bot_turn_end(call, events, log, what="the greeting")


async def wait_for_reply(
    call: Any,
    events: EventsClient,
    log: list[dict[str, Any]],
    *,
    after: float,
    timeout: float = REPLY_TIMEOUT_S,
) -> None:
    """Wait for the agent's whole reply to a caller line that ended at ``after`` (call time).

    The reply's audio must start (within ``timeout``), then end as the greeting's does
    (:func:`wait_for_greeting_end`): the caller says nothing over it.

    Raises:
        TimeoutError: no reply, or it did not end in time.
    """
    spoken = sum(e.get("type") == "bot_started" for e in log)
    await call.wait_for_bot_speech_start(timeout=timeout, after=after)
    await _wait_for_bot_turn_end(call, events, log, what="the reply", spoken=spoken)


async def _wait_for_bot_turn_end(
    call: Any, events: EventsClient, log: list[dict[str, Any]], *, what: str, spoken: int = 0
) -> None:
    """Wait for the agent's turn to end: bot audio quiet for 1 s, its last speaking event.

    The agent's last speaking event in ``log`` must be a ``bot_stopped``, after more than
    ``spoken`` ``bot_started`` events (the turn waited for has started).
    """
    deadline = time.monotonic() + GREETING_TIMEOUT_S
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{what} did not end")
        await call.wait_for_bot_silence(1.0, timeout=left)
        log += await events.fetch()
        speaking = [e["type"] for e in log if e.get("type") in ("bot_started", "bot_stopped")]
        done = speaking.count("bot_started") > spoken and speaking[-1] == "bot_stopped"
        if not events.available or done or call.closed:
            return
        await asyncio.sleep(0.2)


async def _dial(target: Any, job: Job) -> Any:
    call = await target.dial(background=_background(job))
    if target.rest is not None:
        target.rest.register(call.call_sid, _follow_rest(call))
    return call


def _follow_rest(call: Any) -> Callable[[Any], None]:
    """Like Twilio: a REST hang-up or redirect (a transfer) ends the media stream."""

    def on_update(update: Any) -> None:
        if update.ends_stream and not call.closed:
            asyncio.ensure_future(call.remote_hang_up())

    return on_update


def _background(job: Job) -> Callable[[int], bytes] | None:
    """The call's noise: one bed per kind, each call from its own point in it."""
    if job.condition.noise is None or job.condition.snr_db is None:
        return None
    from simulator.voices.noise import SPEECH_LEVEL_RMS, BackgroundNoise, noise_bed

    bed = noise_bed(job.condition.noise)
    level = SPEECH_LEVEL_RMS / 10 ** (job.condition.snr_db / 20.0)
    offset = random.Random(job.seed).randrange(len(bed))
    return BackgroundNoise(bed, level, offset=offset)


async def _record_turns(
    target: Any, call_id: str | None, http: httpx.AsyncClient
) -> list[dict[str, Any]] | None:
    """The call record's turns once the record is closed (None without records)."""
    if not (call_id and target.base_url and target.operator_token):
        return None
    url = f"{target.base_url.rstrip('/')}/api/calls/{call_id}"
    headers = {"Authorization": f"Bearer {target.operator_token}"}
    deadline = time.monotonic() + RECORD_WAIT_S
    while True:
        try:
            r = await http.get(url, headers=headers, timeout=10)
        except httpx.HTTPError:
            return None
        if r.status_code == 200:
            data = r.json()
            if data.get("ended_at") or time.monotonic() > deadline:
                return list(data.get("turns", []))
        elif r.status_code != 404 or time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.3)
