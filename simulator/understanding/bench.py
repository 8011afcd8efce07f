"""``callagent bench understanding``: does the agent understand callers it has never heard?

For each request of a request set (:mod:`simulator.understanding.requests`) x voice x
condition (clean, or noise at an SNR), one real call over the Twilio Media Streams
protocol (:mod:`simulator.phone`) to the agent (started here, or ``--url``): the caller
waits for the greeting to end, says the request (a request of two sentences with a
natural pause between them), then listens to the reply. A request with a context (a yes
or a no, a goodbye: see :mod:`simulator.understanding.requests`) is said after its
context line, in the same voice, once the agent has answered that line in full
(:func:`phone_script`). What the agent made of the request is read from the call's
events and record (:mod:`simulator.understanding.outcomes`), never from log text. Calls
run ``--calls-at-once`` in parallel. Figures are printed and saved (JSON, HTML); nothing
is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from simulator.bench import args as bench_args
from simulator.events_client import EventsClient
from simulator.understanding.outcomes import read_call, request_transcript
from simulator.understanding.requests import (
    CallerRequest,
    RequestSet,
    RequestSetError,
    load_request_set,
)
from simulator.understanding.results import CLEAN, RequestCall

DEFAULT_SET = Path("scenarios/dental/requests/understanding.yaml")
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


def add_parser(kinds: argparse._SubParsersAction) -> None:
    """Register ``callagent bench understanding``."""
    p = kinds.add_parser(
        "understanding",
        help="unseen caller requests in many voices, clean and in noise: acted right or "
        "wrong, clarified, repaired, cut off; WER; confusion table",
    )
    p.add_argument(
        "--set",
        type=Path,
        default=DEFAULT_SET,
        help=f"the request set (default {DEFAULT_SET}); it names its agent file",
    )
    p.add_argument(
        "--voices",
        default="default",
        help="comma-separated caller voices NAME[@RATE] (flite slt/rms/awb/kal or "
        "espeak:<voice>), 'default' (slt,rms,awb,espeak:en-gb-x-rp) or 'all'",
    )
    p.add_argument(
        "--noise",
        default="none",
        help="comma-separated conditions: none (clean), white, pink, babble (default none)",
    )
    p.add_argument(
        "--snr", default="10", help="comma-separated SNRs in dB for the noisy conditions (10)"
    )
    p.add_argument("--calls-at-once", type=int, default=4, help="calls in parallel (4)")
    p.add_argument(
        "--limit", type=int, help="only this many requests (taken in turn from each intent)"
    )
    p.add_argument("--seed", type=int, default=15, help="where each call's noise starts (15)")
    p.add_argument("--html", type=Path, help="also write an HTML report here")
    bench_args.add_agent_arguments(p, operator_token_for="needed: outcomes come from events")
    bench_args.add_output_arguments(p)
    p.set_defaults(func=run_understanding)


def run_understanding(args: argparse.Namespace) -> int:
    """``callagent bench understanding``."""
    try:
        plan = plan_from_args(args)
    except (RequestSetError, ValueError) as e:
        print(e, file=sys.stderr)
        return 2
    if args.url and not args.operator_token:
        print(
            "--url needs --operator-token: outcomes are read from the call events", file=sys.stderr
        )
        return 2
    return bench_args.run(args, lambda a: _main(a, plan))


@dataclass(frozen=True)
class Plan:
    """What a run will do."""

    request_set: RequestSet
    requests: list[CallerRequest]
    voices: list[str]
    conditions: list[Condition]
    jobs: list[Job]


def plan_from_args(args: argparse.Namespace) -> Plan:
    """The request set, voices, conditions and calls of a run.

    Raises:
        RequestSetError: the request set is wrong.
        ValueError: a bad voice, noise or SNR.
    """
    from simulator.understanding.voices import voice_list

    request_set = load_request_set(args.set)
    requests = pick_requests(request_set.requests, args.limit)
    voices = voice_list(args.voices)
    conditions = parse_conditions(args.noise, args.snr)
    return Plan(request_set, requests, voices, conditions, plan_jobs(requests, voices, conditions))


def pick_requests(requests: Sequence[CallerRequest], limit: int | None) -> list[CallerRequest]:
    """All requests, or ``limit`` of them taken in turn from each intent."""
    if limit is None or limit >= len(requests):
        return list(requests)
    by_intent: dict[str, list[CallerRequest]] = {}
    for r in requests:
        by_intent.setdefault(r.intent, []).append(r)
    picked: list[CallerRequest] = []
    round_ = 0
    while len(picked) < limit:
        for group in by_intent.values():
            if round_ < len(group) and len(picked) < limit:
                picked.append(group[round_])
        round_ += 1
    return picked


def parse_conditions(noise: str, snr: str) -> list[Condition]:
    """``--noise none,babble --snr 10`` -> clean, babble at 10 dB.

    Raises:
        ValueError: an unknown noise or a bad SNR.
    """
    from simulator.voices.noise import NOISE_KINDS

    try:
        snrs = [float(s) for s in snr.split(",") if s.strip()]
    except ValueError:
        raise ValueError("--snr takes numbers (dB), comma-separated") from None
    out: list[Condition] = []
    for kind in (k.strip() for k in noise.split(",") if k.strip()):
        if kind in ("none", CLEAN):
            out.append(Condition())
        elif kind in NOISE_KINDS:
            out += [Condition(kind, s) for s in snrs]
        else:
            raise ValueError(f"unknown noise {kind!r}: use none, {', '.join(NOISE_KINDS)}")
    if not out:
        raise ValueError("--noise names no condition")
    return list(dict.fromkeys(out))


def plan_jobs(
    requests: Sequence[CallerRequest],
    voices: Sequence[str],
    conditions: Sequence[Condition],
    *,
    seed: int = 0,
) -> list[Job]:
    """Every request x voice x condition, one call each."""
    jobs = []
    for condition in conditions:
        for voice in voices:
            for request in requests:
                jobs.append(Job(request, voice, condition, seed=seed * 100_000 + len(jobs)))
    return jobs


async def _main(args: argparse.Namespace, plan: Plan) -> int:
    from simulator.bench import kit as benchkit
    from simulator.understanding import report

    started = time.monotonic()
    clips = await asyncio.to_thread(render_clips, plan.requests, plan.voices)
    agent = await benchkit.start_agent(
        args.url,
        mode=args.server,
        auth_token=args.auth_token,
        operator_token=args.operator_token,
        env={"CALLAGENT_AGENT_FILE": str(plan.request_set.agent_file)},
        verbose=args.verbose,
    )
    print(
        f"bench understanding: {len(plan.requests)} requests x {len(plan.voices)} voice(s) x "
        f"{len(plan.conditions)} condition(s) = {len(plan.jobs)} calls, "
        f"{args.calls_at_once} at once -> {agent.target.label}",
        file=sys.stderr,
        flush=True,
    )
    try:
        await warm_up(agent.target)
        rows = await run_calls(
            agent.target, plan.jobs, clips, calls_at_once=args.calls_at_once, show_progress=True
        )
    finally:
        await agent.stop()
    meta = {
        "request_set": str(plan.request_set.path),
        "agent_file": str(plan.request_set.agent_file),
        "target": agent.target.label,
        "voices": plan.voices,
        "conditions": [c.name for c in plan.conditions],
        "requests": len(plan.requests),
        "calls_at_once": args.calls_at_once,
        "wall_time_s": round(time.monotonic() - started, 1),
    }
    data = report.to_json(rows, meta)
    print()
    print("\n".join(report.console_lines(data)))
    from simulator.bench.kit import save_json

    save_json(args.json, data)
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(report.html(data), encoding="utf-8")
        print(f"saved {args.html}")
    return 0


def phone_script(request: CallerRequest) -> list[str]:
    """What the caller says on a request's call, in order: its context line, then the request.

    Every line but the last is said and answered in full before the next; the last one is
    the request, whose outcome the call measures.
    """
    return [request.context, request.text] if request.context else [request.text]


def render_clips(
    requests: Sequence[CallerRequest], voices: Sequence[str]
) -> dict[tuple[str, str], bytes]:
    """(line, voice) -> the line as that caller says it: each request and its context line."""
    from tqdm import tqdm

    from simulator.understanding.voices import spoken

    pairs = list(
        dict.fromkeys((line, v) for v in voices for r in requests for line in phone_script(r))
    )
    out: dict[tuple[str, str], bytes] = {}
    for text, voice in tqdm(pairs, desc="caller voices", unit="clip", file=sys.stderr):
        out[(text, voice)] = spoken(text, voice)
    return out


async def run_calls(
    target: Any,
    jobs: Sequence[Job],
    clips: dict[tuple[str, str], bytes],
    *,
    calls_at_once: int = 4,
    show_progress: bool = False,
    reply_timeout_s: float = REPLY_TIMEOUT_S,
    listen_s: float = LISTEN_S,
) -> list[RequestCall]:
    """Place every job's call, ``calls_at_once`` at a time; rows in job order."""
    from tqdm import tqdm

    gate = asyncio.Semaphore(max(1, calls_at_once))
    bar = tqdm(
        total=len(jobs), desc="calls", unit="call", file=sys.stderr, disable=not show_progress
    )
    tally = {"right": 0, "wrong": 0, "cut": 0}

    async with httpx.AsyncClient() as http:

        async def one(i: int, job: Job) -> RequestCall:
            async with gate:  # only the calls themselves load the agent
                if i < calls_at_once:
                    await asyncio.sleep(i * 0.7)  # stagger the first calls' greetings
                heard = await talk(
                    target,
                    job,
                    clips,
                    http,
                    reply_timeout_s=reply_timeout_s,
                    listen_s=listen_s,
                )
            row = await read_back(target, job, heard, http)
            tally["right"] += row.outcome == "acted_right"
            tally["wrong"] += row.outcome == "acted_wrong"
            tally["cut"] += row.cut_off
            bar.set_postfix(tally, refresh=False)
            bar.update()
            return row

        try:
            return list(await asyncio.gather(*(one(i, j) for i, j in enumerate(jobs))))
        finally:
            bar.close()


async def place_request_call(
    target: Any,
    job: Job,
    clips: Mapping[tuple[str, str], bytes],
    http: httpx.AsyncClient,
    *,
    reply_timeout_s: float = REPLY_TIMEOUT_S,
    listen_s: float = LISTEN_S,
) -> RequestCall:
    """One call: greeting, context line and reply (if any), request, reply's start; read."""
    heard = await talk(target, job, clips, http, reply_timeout_s=reply_timeout_s, listen_s=listen_s)
    return await read_back(target, job, heard, http)


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
