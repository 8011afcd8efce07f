"""``callagent bench barge-in``: how fast the bot goes quiet for the caller, and when it must not.

Three measurements, all at the phone over Twilio Media Streams (and, with ``--sip URI``,
the same again at a SIP caller: INVITE, G.711 RTP, RFC 4733 keys; SIP has no ``clear``,
so there an answer counts as cut when the agent's events report an ``interruption``):

- **barge-in**: the caller asks a question with a long answer, then talks over the
  answer (0.6-1.6 s into it) with a new question; caller voice onset -> the bot's
  audio stops at the phone (what Twilio's ``clear`` achieves), and onset -> ``clear``;
- **babble**: with babble noise 10 dB below the caller's level throughout the call, the
  caller asks by key press (so the answer is a long one whatever the noise does to
  speech recognition) and says nothing while the bot answers; any ``clear`` during an
  answer is a false barge-in;
- **backchannel**: the caller says "mhm", "okay", "uh huh"... 1.2 s into an answer; a
  false barge-in is an answer the bot abandons (it does not resume it, or replies to the
  backchannel). How long the bot pauses before resuming is reported too.

Figures are printed and saved; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from typing import Any

from simulator.bench import args as bench_args

PER_CALL = 4
KEYED_QUESTIONS = ("1#", "2#")
"""Keypad menu entries with long answers (the reference agent: 1 hours, 2 address)."""


def add_parser(kinds: argparse._SubParsersAction) -> None:
    """Register ``callagent bench barge-in``."""
    p = kinds.add_parser(
        "barge-in", help="caller onset -> bot silent at the phone; false barge-ins from noise"
    )
    bench_args.add_agent_arguments(p, operator_token_for="to see resumed answers")
    bench_args.add_sip_argument(p, what="the same measurements again over SIP")
    p.add_argument("--trials", type=int, default=30, help="barge-ins to measure (30)")
    p.add_argument("--noise-trials", type=int, default=16, help="answers under babble (16)")
    p.add_argument(
        "--backchannel-trials", type=int, default=16, help="backchannels during answers (16)"
    )
    p.add_argument("--snr", type=float, default=10.0, help="babble SNR in dB (10)")
    p.add_argument("--seed", type=int, default=7)
    bench_args.add_output_arguments(p)
    p.set_defaults(func=run_barge_in)


def run_barge_in(args: argparse.Namespace) -> int:
    """``callagent bench barge-in``."""
    return bench_args.run(args, _main)


async def _main(args: argparse.Namespace) -> int:
    from simulator.bench import kit as benchkit

    problem = bench_args.sip_problem(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    texts = (*benchkit.LONG_ANSWERS, *benchkit.INTERRUPTIONS, *benchkit.BACKCHANNELS)
    clips = await asyncio.to_thread(benchkit.clips, texts)
    agent = await benchkit.start_agent_for(args)
    results: dict[str, dict[str, Any]] = {}
    try:
        for wire in ("twilio", "sip") if args.sip else ("twilio",):
            if args.sip:
                print(f"over {'SIP' if wire == 'sip' else 'Twilio Media Streams'}:", flush=True)
            results[wire] = await _measure(agent, clips, args, sip=wire == "sip")
    finally:
        await agent.stop()
    result = results["twilio"]
    if args.sip:
        _print_comparison(results["twilio"], results["sip"])
        result = {
            "bench": "barge-in",
            "target": agent.target.label,
            "twilio": results["twilio"],
            "sip": results["sip"],
        }
    benchkit.save_json(args.json, result)
    return 0


async def _measure(
    agent: Any, clips: dict[str, bytes], args: argparse.Namespace, *, sip: bool
) -> dict[str, Any]:
    """The three measurements over one wire; prints them and returns the figures."""
    from integrations.percentile import latency_summary
    from simulator.bench import kit as benchkit

    rng = random.Random(args.seed)
    barge = await _barge_ins(agent, clips, args.trials, rng, sip=sip)
    noise = await _under_babble(agent, clips, args.noise_trials, args.snr, args.seed, sip=sip)
    back = await _backchannels(agent, clips, args.backchannel_trials, rng, sip=sip)
    stop = latency_summary([t["stop_ms"] for t in barge])
    clear = latency_summary([t["clear_ms"] for t in barge])
    result: dict[str, Any] = {
        "bench": "barge-in",
        "target": agent.target.label,
        "wire": "sip" if sip else "twilio",
        "barge_in": {
            "trials": len(barge),
            "bot_was_speaking": sum(t["bot_was_speaking"] for t in barge),
            "onset_to_silent_at_phone": stop,
            "onset_to_clear": clear,
            "trial_data": barge,
        },
        "babble": noise,
        "backchannel": back,
    }
    print()
    wire = "SIP caller" if sip else "phone"
    print(f"barge-in: caller onset -> bot silent at the {wire}")
    print(f"  {benchkit.fmt(stop)}")
    if not sip:
        print(f"  onset -> Twilio clear: {benchkit.fmt(clear)}")
    cuts = "interruption(s)" if sip else "clear(s)"
    print(
        f"babble at {args.snr:g} dB SNR, caller silent: {noise['false_barge_ins']} false "
        f"barge-in(s) in {noise['answers']} answers ({noise['clears']} {cuts})"
    )
    print(
        f"backchannels during answers: {back['abandoned']} answer(s) abandoned of "
        f"{back['trials']}; {back['resumed']} resumed after a pause of "
        f"{benchkit.fmt(back['pause'])}; {back['kept_talking']} not even paused"
    )
    return result


def _print_comparison(twilio: dict[str, Any], sip: dict[str, Any]) -> None:
    from simulator.bench import kit as benchkit

    print()
    print("caller onset -> bot silent at the caller")
    print(f"  Twilio Media Streams: {benchkit.fmt(twilio['barge_in']['onset_to_silent_at_phone'])}")
    print(f"  SIP (G.711 RTP):      {benchkit.fmt(sip['barge_in']['onset_to_silent_at_phone'])}")


async def _call(agent: Any, *, sip: bool = False, **kwargs: Any) -> Any:
    return await bench_args.dial(agent.target, sip=sip, **kwargs)


async def _cut(call: Any, events: Any, clears_before: int) -> tuple[int, list[str]]:
    """How many times the bot was cut since ``clears_before``, and the events since.

    Twilio: the ``clear`` messages the phone received. SIP has no such message: the
    agent's ``interruption`` events count instead.
    """
    from simulator.phone import SipCallEmulator

    new = await events.fetch() if events is not None else []
    kinds = [str(e.get("type")) for e in new]
    if isinstance(call, SipCallEmulator):
        return kinds.count("interruption"), kinds
    return call.clears_received - clears_before, kinds


async def _greeted(call: Any) -> None:
    await call.wait_for_bot_speech_start(timeout=30)
    await call.wait_for_bot_silence(1.0, timeout=30)


async def _barge_ins(
    agent: Any, clips: dict[str, bytes], trials: int, rng: random.Random, *, sip: bool = False
) -> list:
    from simulator.bench import kit as benchkit
    from simulator.phone import CallEndedError

    out: list[dict[str, Any]] = []
    while len(out) < trials:
        call = await _call(agent, sip=sip)
        try:
            await _greeted(call)
            for _ in range(min(PER_CALL, trials - len(out))):
                question = rng.choice(benchkit.LONG_ANSWERS)
                turn = await call.say(clips[question])
                start = await call.wait_for_bot_speech_start(timeout=30, after=turn.caller_end_s)
                await asyncio.sleep(max(0.0, start + rng.uniform(0.6, 1.6) - call.now()))
                before = len(call.barge_ins)
                interruption = await call.say(clips[rng.choice(benchkit.INTERRUPTIONS)])
                measured = call.barge_ins[before] if len(call.barge_ins) > before else None
                if measured is not None:
                    for _ in range(40):
                        if measured.bot_stopped_s is not None:
                            break
                        await asyncio.sleep(0.05)
                onset = interruption.caller_onset_s
                out.append(
                    {
                        "bot_was_speaking": measured is not None,
                        "stop_ms": _ms(measured.bot_stopped_s - onset)
                        if measured and measured.bot_stopped_s is not None
                        else None,
                        "clear_ms": _ms(measured.clear_s - onset)
                        if measured and measured.clear_s is not None
                        else None,
                    }
                )
                print(f"  barge-in {len(out)}: {out[-1]['stop_ms']} ms", flush=True)
                await call.wait_for_bot_silence(1.2, timeout=40)
        except (CallEndedError, TimeoutError) as e:
            print(f"  call ended early: {type(e).__name__}", file=sys.stderr)
        finally:
            await call.hang_up()
    return out


async def _under_babble(
    agent: Any,
    clips: dict[str, bytes],
    answers: int,
    snr: float,
    seed: int,
    *,
    sip: bool = False,
) -> dict[str, Any]:
    import httpx

    from simulator.events_client import EventsClient
    from simulator.phone import CallEndedError
    from simulator.voices.noise import BackgroundNoise, NoiseSpec

    done = clears = false = 0
    n = 0
    http = httpx.AsyncClient()
    while done < answers:
        n += 1
        noise = BackgroundNoise.for_speech(NoiseSpec("babble", snr, seed=seed + n))
        call = await _call(agent, sip=sip, background=noise)
        events = EventsClient(agent.target, call.call_sid, http) if sip else None
        try:
            await _greeted(call)
            for _ in range(min(PER_CALL, answers - done)):
                pressed = call.now()
                await call.press(KEYED_QUESTIONS[done % len(KEYED_QUESTIONS)])
                start = await call.wait_for_bot_speech_start(timeout=30, after=pressed)
                before = call.clears_received
                if events is not None:
                    await events.fetch()
                end = await call.wait_for_bot_silence(1.5, timeout=40)
                cut, _kinds = await _cut(call, events, before)
                clears += cut
                false += cut > 0
                done += 1
                print(f"  babble answer {done}: {end - start:.1f} s, {cut} clear(s)", flush=True)
        except (CallEndedError, TimeoutError) as e:
            print(f"  call ended early: {type(e).__name__}", file=sys.stderr)
        finally:
            await call.hang_up()
    await http.aclose()
    return {"snr_db": snr, "answers": done, "false_barge_ins": false, "clears": clears}


async def _backchannels(
    agent: Any, clips: dict[str, bytes], trials: int, rng: random.Random, *, sip: bool = False
) -> dict[str, Any]:
    import httpx

    from integrations.percentile import latency_summary
    from simulator.bench import kit as benchkit
    from simulator.events_client import EventsClient
    from simulator.phone import CallEndedError

    rows: list[dict[str, Any]] = []
    async with httpx.AsyncClient() as http:
        while len(rows) < trials:
            call = await _call(agent, sip=sip)
            events = EventsClient(agent.target, call.call_sid, http)
            try:
                await _greeted(call)
                await events.fetch()
                for _ in range(min(PER_CALL, trials - len(rows))):
                    question = rng.choice(benchkit.LONG_ANSWERS)
                    turn = await call.say(clips[question])
                    start = await call.wait_for_bot_speech_start(
                        timeout=30, after=turn.caller_end_s
                    )
                    await events.fetch()  # the question's own events
                    await asyncio.sleep(max(0.0, start + 1.2 - call.now()))
                    word = benchkit.BACKCHANNELS[len(rows) % len(benchkit.BACKCHANNELS)]
                    clears = call.clears_received
                    said = await call.say(clips[word])
                    await call.wait_for_bot_silence(1.5, timeout=40)
                    cut, kinds = await _cut(call, events, clears)
                    paused = cut > 0
                    resumed = "resumed" in kinds
                    replied = "nlu" in kinds  # the backchannel was taken as a question
                    pause_ms = None
                    if paused:
                        gaps = [
                            (s, e) for s, e in call.bot_utterances() if s >= said.caller_onset_s
                        ]
                        if gaps:
                            pause_ms = _ms(gaps[0][0] - said.caller_onset_s)
                    rows.append(
                        {
                            "word": word,
                            "paused": paused,
                            "resumed": resumed,
                            "replied_to": replied,
                            "pause_ms": pause_ms,
                        }
                    )
                    print(f"  backchannel {len(rows)} {word!r}: {rows[-1]}", flush=True)
            except (CallEndedError, TimeoutError) as e:
                print(f"  call ended early: {type(e).__name__}", file=sys.stderr)
            finally:
                await call.hang_up()
    return {
        "trials": len(rows),
        "paused": sum(r["paused"] for r in rows),
        "resumed": sum(r["resumed"] for r in rows),
        "kept_talking": sum(not r["paused"] for r in rows),
        "abandoned": sum(r["paused"] and not r["resumed"] for r in rows),
        "replied_to": sum(r["replied_to"] for r in rows),
        "pause": latency_summary([r["pause_ms"] for r in rows]),
        "events_visible": bool(agent.target.operator_token),
        "trial_data": rows,
    }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
