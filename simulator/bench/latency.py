"""``callagent bench``: measure the agent the way a caller experiences it.

``bench latency`` places phone calls over the real Twilio Media Streams protocol with
the phone emulator (:mod:`simulator.phone`), asks the agent's own FAQ
questions in a synthetic caller voice, and measures, at the phone, the time from the
caller's end of speech to the first bot audio heard. It also collects the server's own
per-stage breakdown from each call's ``latency`` events (``/api/calls/{id}/events``:
always for the agent started here, with ``--operator-token`` for a running one). With
``--sip URI`` the same calls are placed a second time over SIP (INVITE, G.711 RTP; the
agent started here listens on the URI's port) and both wires' figures are printed side
by side, each measured at its caller. It prints numbers and never fails on slow ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from simulator.bench.latency_report import (
    LatencyReport,
    TurnResult,
    print_comparison,
    print_report,
)
from simulator.events_client import EventsClient
from simulator.local_agent import LocalAgent
from simulator.replies import (
    REPLY_WINDOW_S,
    expected_replies,
    reply_answers,
)
from simulator.target import Target

QUESTIONS_PER_CALL = 5
_SKIP_INTENTS = {"affirm", "deny", "goodbye"}


def add_parser(kinds: argparse._SubParsersAction) -> None:
    """Register ``callagent bench latency``."""
    latency = kinds.add_parser(
        "latency",
        help="caller end of speech -> first bot audio at the phone, over Twilio Media Streams",
    )
    latency.add_argument(
        "--url",
        help="stream URL of a running server (ws://HOST:PORT/twilio/stream); "
        "default: start the server in-process on a free port",
    )
    latency.add_argument(
        "--sip",
        metavar="URI",
        help="also place the same calls over SIP to this URI (sip:agent@127.0.0.1:5060) and "
        "print both wires' figures; without --url the agent started here listens there",
    )
    latency.add_argument("--turns", type=int, default=50, help="caller turns to measure (50)")
    latency.add_argument(
        "--noise",
        choices=["white", "pink", "babble"],
        help="background noise at the caller's end (babble: 7 espeak-ng talkers)",
    )
    latency.add_argument("--snr", type=float, default=10.0, help="noise SNR in dB (10)")
    latency.add_argument(
        "--questions-per-call",
        type=int,
        default=QUESTIONS_PER_CALL,
        help=f"questions asked in each call ({QUESTIONS_PER_CALL})",
    )
    latency.add_argument(
        "--auth-token",
        default=None,
        help="sign the stream request with this Twilio auth token (for --url servers "
        "that validate signatures)",
    )
    latency.add_argument(
        "--operator-token",
        default=None,
        help="the --url server's CALLAGENT_OPERATOR_TOKEN: read its per-stage breakdown "
        "from the calls' events",
    )
    latency.add_argument(
        "--reply-timeout", type=float, default=30.0, help="seconds to wait for each reply (30)"
    )
    latency.add_argument("--json", type=Path, help="also save the results as JSON here")
    latency.add_argument(
        "--verbose", action="store_true", help="show the in-process server's log lines"
    )
    latency.set_defaults(func=run_latency)


# Results


# Questions


def scripted_questions(agent: Any) -> list[list[str]]:
    """Per intent the agent answers directly (no transfer, no hang-up), its example phrasings."""
    from processors.agent_definition import IntentAction

    out = []
    for intent in agent.intents:
        if intent.name in _SKIP_INTENTS or intent.action is not IntentAction.ANSWER:
            continue
        if intent.response and not intent.slots and intent.examples:
            out.append(list(intent.examples))
    return out


def plan_calls(questions: list[list[str]], turns: int, per_call: int) -> list[list[str]]:
    """Spread ``turns`` questions over calls, rotating intents and phrasings."""
    flat = []
    for round_ in range(max(len(q) for q in questions)):
        for phrasings in questions:
            flat.append(phrasings[round_ % len(phrasings)])
    picked = [flat[i % len(flat)] for i in range(turns)]
    return [picked[i : i + per_call] for i in range(0, len(picked), per_call)]


# The bench


async def measure_latency(
    target: Target | str,
    calls: list[list[str]],
    clips: dict[str, bytes],
    *,
    auth_token: str | None,
    reply_timeout_s: float,
    report: LatencyReport,
    progress: Callable[[str], None] = print,
    background: Callable[[int], Any] | None = None,
    replies: ReplyCheck | None = None,
    events_from: Target | None = None,
) -> None:
    """Place the calls one after another and record each turn's latency at the phone.

    ``target`` is where to call (a ``ws(s)://.../twilio/stream`` URL is called straight on
    the stream, signed with ``auth_token``; an ``http(s)://`` one or a :class:`Target`
    placed through the voice webhook, as a server that binds streams to webhooks needs).
    ``background(n)`` gives call ``n``'s background noise (see ``simulator.voices.noise``).
    With ``replies``, the start of every reply is kept and, once the last call is over,
    transcribed and checked against the answer expected for its question. With
    ``events_from`` (a target with an operator token), each call's server-side turn
    latencies are read from its events into ``report.server_turns``.
    """
    import httpx

    if isinstance(target, str):
        target = Target.from_url(target, auth_token=auth_token)
    async with httpx.AsyncClient() as http:
        await _measure_calls(
            target,
            calls,
            clips,
            reply_timeout_s=reply_timeout_s,
            report=report,
            progress=progress,
            background=background,
            replies=replies,
            events=(lambda sid: EventsClient(events_from, sid, http)) if events_from else None,
        )


async def _measure_calls(
    target: Target,
    calls: list[list[str]],
    clips: dict[str, bytes],
    *,
    reply_timeout_s: float,
    report: LatencyReport,
    progress: Callable[[str], None],
    background: Callable[[int], Any] | None,
    replies: ReplyCheck | None,
    events: Callable[[str], EventsClient] | None,
) -> None:
    from simulator.phone import CallEndedError

    heard: list[tuple[TurnResult, bytes]] = []
    for n, questions in enumerate(calls, 1):
        noise = background(n) if background is not None else None
        call = await target.dial(background=noise)
        call_events = events(call.call_sid) if events is not None else None
        try:
            greeting = await call.wait_for_bot_speech_start(timeout=reply_timeout_s)
            report.greeting_ms.append(round(greeting * 1000, 1))
            await call.wait_for_bot_silence(1.0, timeout=reply_timeout_s)
            for question in questions:
                turn = await call.say(clips[question])
                try:
                    await call.wait_for_bot_speech_start(
                        timeout=reply_timeout_s, after=turn.caller_end_s
                    )
                except TimeoutError:
                    pass
                latency = None if turn.latency_s is None else round(turn.latency_s * 1000, 1)
                speech_ms = round((turn.caller_end_s - turn.caller_onset_s) * 1000, 1)
                result = TurnResult(n, question, latency, speech_ms)
                report.turns.append(result)
                shown = "no reply" if latency is None else f"{latency:.0f} ms"
                progress(f"  call {n} turn {len(report.turns)}: {shown}")
                await call.wait_for_bot_silence(1.0, timeout=reply_timeout_s * 2)
                if turn.bot_audio_s is not None:
                    start = turn.bot_audio_s
                    heard.append((result, call.heard_audio(start, start + REPLY_WINDOW_S)))
        except (CallEndedError, TimeoutError) as e:
            progress(f"  call {n} ended early: {e}")
        finally:
            await call.hang_up()
        if call_events is not None:
            for event in await call_events.drain():
                _collect_server_turn(event, report, call_events.call_id or call.call_sid)
    if replies is not None and heard:
        progress(f"checking {len(heard)} replies against the expected answers...")
        await asyncio.to_thread(replies.check, heard)


@dataclass
class ReplyCheck:
    """Transcribes heard replies and checks them against the expected answers."""

    expected: dict[str, list[str]]
    """Question -> the response(s) that answer it (:func:`expected_replies`)."""
    transcribe: Callable[[bytes], str]
    """16-bit 8 kHz mono PCM -> text."""

    def check(self, heard: list[tuple[TurnResult, bytes]]) -> None:
        """Fill in each turn's ``reply`` and ``answered``."""
        for result, pcm in heard:
            result.reply = self.transcribe(pcm)
            result.answered = reply_answers(result.reply, self.expected.get(result.question, []))


def run_latency(args: argparse.Namespace) -> int:
    """``callagent bench latency``."""
    from loguru import logger

    from bot.agent import load_agent
    from bot.settings import Settings

    settings = Settings.load()
    agent = load_agent(settings.agent_file)
    questions = scripted_questions(agent)
    if not questions:
        print("the agent has no directly answered intents to ask about", file=sys.stderr)
        return 2
    per_call = max(1, args.questions_per_call)
    calls = plan_calls(questions, max(1, args.turns), per_call)
    from simulator.voices import caller_voice
    from simulator.voices.noise import BackgroundNoise, NoiseSpec, normalize_active

    try:
        # one speech level for every clip, so noise sits exactly --snr dB below it
        clips = {q: normalize_active(caller_voice.synthesize(q)) for c in calls for q in c}
        background: Callable[[int], Any] | None = None
        if args.noise:
            spec = NoiseSpec(args.noise, args.snr)
            BackgroundNoise.for_speech(spec)  # synthesise the noise once, up front

            def noise_for(n: int) -> Any:
                return BackgroundNoise.for_speech(NoiseSpec(args.noise, args.snr, seed=n))

            background = noise_for

    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 2

    if args.sip:
        from simulator.phone import SipTarget

        try:
            sip_target = SipTarget.parse(args.sip)
        except ValueError as e:
            print(f"--sip {args.sip}: {e}", file=sys.stderr)
            return 2
        if args.url is None and sip_target.host not in ("127.0.0.1", "localhost"):
            print("--sip: the agent started here listens on 127.0.0.1 (or give --url)")
            return 2
    report = LatencyReport(url=args.url or "in-process")
    report.conditions = {"noise": args.noise, "snr_db": args.snr if args.noise else None}
    sip_report = LatencyReport(url=args.sip, wire="sip") if args.sip else None
    if sip_report is not None:
        sip_report.conditions = report.conditions
    logger.remove()
    logger.add(sys.stderr, level="INFO" if args.verbose else "WARNING")
    noise = f", {args.noise} noise at {args.snr:g} dB SNR" if args.noise else ", no noise"
    asyncio.run(
        _run(
            args,
            report,
            noise,
            calls=calls,
            clips=clips,
            background=background,
            replies=ReplyCheck(expected_replies(agent), _phone_transcriber()),
            sip_report=sip_report,
        )
    )
    print_report(report)
    data: dict[str, Any] = report.to_json()
    if sip_report is not None:
        print_report(sip_report)
        print_comparison(report, sip_report)
        data = {"bench": "latency", "twilio": data, "sip": sip_report.to_json()}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2))
        print(f"saved {args.json}")
    return 0


async def _run(
    args: argparse.Namespace,
    report: LatencyReport,
    noise: str,
    *,
    calls: list[list[str]],
    clips: dict[str, bytes],
    background: Callable[[int], Any] | None,
    replies: ReplyCheck,
    sip_report: LatencyReport | None = None,
) -> None:
    """Start the agent here unless ``--url`` names one, and measure the calls.

    With ``sip_report`` the same calls are then placed over SIP (``--sip``) into it.
    """
    from simulator.phone import SipTarget

    local: LocalAgent | None = None
    sip_port = SipTarget.parse(args.sip).port if args.sip else 0
    if args.url is None:
        print("starting the server in-process (loading models)...", flush=True)
        local = LocalAgent(mode="thread", sip_port=sip_port)
        target = await local.start()
        target = replace(target, sip_uri=None)  # the Twilio round first
        report.url = target.stream_url
    else:
        target = Target.from_url(
            args.url, auth_token=args.auth_token, operator_token=args.operator_token
        )
    print(
        f"bench latency: {sum(map(len, calls))} turns in {len(calls)} calls -> "
        f"{target.stream_url}{noise}"
    )
    try:
        await measure_latency(
            target,
            calls,
            clips,
            auth_token=target.auth_token,
            reply_timeout_s=args.reply_timeout,
            report=report,
            background=background,
            replies=replies,
            events_from=target if target.operator_token else None,
        )
        if sip_report is not None:
            sip_target = target.over_sip(args.sip)
            print(f"the same {sum(map(len, calls))} turns over SIP -> {sip_target.sip_uri}")
            sip_report.url = sip_target.sip_uri or args.sip
            await measure_latency(
                sip_target,
                calls,
                clips,
                auth_token=None,
                reply_timeout_s=args.reply_timeout,
                report=sip_report,
                background=background,
                replies=replies,
                events_from=sip_target if sip_target.operator_token else None,
            )
    finally:
        if local is not None:
            await local.stop()


def _phone_transcriber() -> Callable[[bytes], str]:
    """Moonshine (the embedded recognizer), loaded on first use, for 8 kHz phone audio."""
    from integrations.speech.audio import PHONE_SAMPLE_RATE
    from integrations.speech.moonshine import MoonshineRecognizer

    def transcribe(pcm: bytes) -> str:
        return MoonshineRecognizer.shared().transcribe(pcm, PHONE_SAMPLE_RATE)

    return transcribe


def _collect_server_turn(event: dict[str, Any], report: LatencyReport, call_id: str) -> None:
    """Keep a caller turn's ``latency`` event (the greeting's is not a turn)."""
    if event.get("type") != "latency" or event.get("kind") != "turn":
        return
    stages = event.get("stages_ms")
    report.server_turns.append(
        {
            "call_id": call_id,
            "total_ms": float(event["total_ms"]),
            "stages_ms": stages if isinstance(stages, dict) else {},
        }
    )
