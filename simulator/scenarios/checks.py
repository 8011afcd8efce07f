"""Checks a step's expectations against what the caller heard and what the server reported.

Reply wording is checked on the transcript of the bot's audio as heard at the phone.
Intent, band and escalation are checked on the server's per-call events
(``/api/calls/{id}/events``) when the simulator can read them; without them an
intent or band check is ``unverified`` (the transcript is shown as a hint), and an
escalation is checked on the REST redirect the agent made, where that is visible.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from simulator.scenarios.results import Check, Status, StepResult
from simulator.scenarios.scenario import Expectations


@dataclass
class CallFacts:
    """Call-level observations the checks need.

    Parameters:
        events_available: The server's event stream could be read.
        rest_visible: The agent's REST requests are seen (in-process fake Twilio).
        transfers: Call time and ``<Dial>`` target of each REST redirect.
    """

    events_available: bool = False
    rest_visible: bool = False
    transfers: list[tuple[float, str]] = field(default_factory=list)


def normalize(text: str) -> str:
    """Lower-case words and digits separated by single spaces."""
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).replace("'", "").split())


def contains(text: str, word: str) -> bool:
    """Whether the normalised transcript contains the normalised word or phrase."""
    return normalize(word) in normalize(text)


def check_step(
    step: StepResult,
    expect: Expectations,
    facts: CallFacts,
    *,
    window_end_s: float | None = None,
    transcribed: bool = True,
) -> list[Check]:
    """Every expectation of one step, checked.

    Args:
        step: The step as it went (transcript filled in).
        expect: What it must satisfy.
        facts: Call-level observations.
        window_end_s: End of the step's observation window (call time), for REST redirects.
        transcribed: Whether the bot's replies could be transcribed (else wording checks
            are unverified).
    """
    if step.skipped:
        return [
            Check(step.index, what, "fail", expected, f"not run: {step.skipped}", expect.line)
            for what, expected in _listed(expect)
        ]
    out: list[Check] = []

    def add(what: str, status: Status, expected: str, actual: str) -> None:
        out.append(Check(step.index, what, status, expected, actual, expect.line))

    nlu = step.events_of("nlu")
    replies = step.events_of("reply")
    heard = step.heard or ""
    shown = f"heard {heard!r}" if heard else "heard nothing"

    if expect.intent:
        expected = " or ".join(expect.intent)
        got = [e.get("intent") for e in nlu] + [e.get("intent") for e in replies]
        got = [g for g in got if g]
        if not facts.events_available:
            add("intent", "unverified", expected, f"server events not available; {shown}")
        elif any(g in expect.intent for g in got):
            add("intent", "pass", expected, _describe_nlu(nlu, replies))
        else:
            add("intent", "fail", expected, _describe_nlu(nlu, replies) or "no NLU decision")

    if expect.band:
        bands = [e.get("band") for e in nlu]
        if not facts.events_available:
            add("band", "unverified", expect.band, f"server events not available; {shown}")
        else:
            status: Status = "pass" if expect.band in bands else "fail"
            add("band", status, expect.band, ", ".join(map(str, bands)) or "no NLU decision")

    for group in expect.reply_contains:
        expected = " or ".join(repr(w) for w in group)
        if not transcribed:
            add("reply_contains", "unverified", expected, "no speech recogniser to transcribe")
            continue
        ok = any(contains(heard, w) for w in group)
        add("reply_contains", "pass" if ok else "fail", expected, shown)

    for word in expect.reply_excludes:
        if not transcribed:
            add("reply_excludes", "unverified", f"not {word!r}", "no speech recogniser")
            continue
        ok = not contains(heard, word)
        add("reply_excludes", "pass" if ok else "fail", f"not {word!r}", shown)

    if expect.no_reply is not None:
        replied = step.reply_start_s is not None
        ok = replied != expect.no_reply
        add(
            "no_reply",
            "pass" if ok else "fail",
            "no reply" if expect.no_reply else "a reply",
            f"replied: {shown}" if replied else "no reply",
        )

    if expect.interrupted is not None:
        out.append(_check_interrupted(step, expect))

    if expect.resumes is not None:
        expected = "the bot resumes its reply" if expect.resumes else "no resumed reply"
        if not facts.events_available:
            add("resumes", "unverified", expected, f"server events not available; {shown}")
        else:
            resumed = bool(step.events_of("resumed"))
            ok = resumed == expect.resumes
            add(
                "resumes",
                "pass" if ok else "fail",
                expected,
                "resumed" if resumed else "not resumed",
            )

    if expect.escalation is not None:
        out.append(_check_escalation(step, expect, facts, window_end_s))

    if expect.call_ends is not None:
        ended = step.call_ended_by in ("server", "network")
        ok = ended == expect.call_ends
        actual = f"ended by {step.call_ended_by}" if step.call_ended_by else "still connected"
        add(
            "call_ends",
            "pass" if ok else "fail",
            "the agent ends the call" if expect.call_ends else "the call goes on",
            actual,
        )

    if expect.max_latency_ms is not None:
        if step.latency_ms is None:
            add("max_latency_ms", "fail", f"<= {expect.max_latency_ms:g} ms", "no reply")
        else:
            ok = step.latency_ms <= expect.max_latency_ms
            add(
                "max_latency_ms",
                "pass" if ok else "fail",
                f"<= {expect.max_latency_ms:g} ms",
                f"{step.latency_ms:.0f} ms",
            )
    return out


def _listed(expect: Expectations) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    if expect.intent:
        items.append(("intent", " or ".join(expect.intent)))
    if expect.band:
        items.append(("band", expect.band))
    items += [("reply_contains", " or ".join(g)) for g in expect.reply_contains]
    items += [("reply_excludes", f"not {w!r}") for w in expect.reply_excludes]
    for name in ("no_reply", "interrupted", "resumes", "call_ends", "max_latency_ms"):
        value = getattr(expect, name)
        if value is not None:
            items.append((name, str(value)))
    if expect.escalation is not None:
        items.append(("escalation", expect.escalation.trigger or str(expect.escalation.expected)))
    return items


def _describe_nlu(nlu: list[dict], replies: list[dict]) -> str:
    parts = [
        f"{e.get('intent')} ({e.get('band')}, {float(e.get('confidence') or 0):.2f}, "
        f"{e.get('path')})"
        for e in nlu
    ]
    reply_intents = [str(e.get("intent")) for e in replies if e.get("intent")]
    if reply_intents:
        parts.append(f"reply for {', '.join(reply_intents)}")
    return "; ".join(parts)


def _check_interrupted(step: StepResult, expect: Expectations) -> Check:
    barge = step.barge_in
    expected = "the bot stops for the caller" if expect.interrupted else "the bot keeps talking"
    if barge is None or not barge.bot_was_speaking:
        return Check(
            step.index,
            "interrupted",
            "fail",
            expected,
            "the bot was not speaking when the caller started",
            expect.line,
        )
    end = (step.caller_end_s or barge.onset_s) + 1.0
    stopped = barge.stop_ms
    if barge.wire == "sip":
        # SIP has no 'clear': the bot stopped for the caller when its audio stopped at the
        # phone before the caller's words were over (plus the same second of grace)
        cut = barge.bot_stopped_s is not None and barge.bot_stopped_s <= end
        actual = (
            f"bot silent at the SIP phone after {stopped:.0f} ms"
            if cut and stopped is not None
            else "the bot kept talking"
        )
        ok = cut == expect.interrupted
        status = "pass" if ok else "fail"
        return Check(step.index, "interrupted", status, expected, actual, expect.line)
    cleared = barge.clear_s is not None and barge.clear_s <= end
    actual = (
        f"clear after {barge.clear_ms:.0f} ms, bot silent at the phone after {stopped:.0f} ms"
        if cleared and stopped is not None
        else "clear received"
        if cleared
        else "no clear: the bot kept talking"
    )
    ok = cleared == expect.interrupted
    return Check(step.index, "interrupted", "pass" if ok else "fail", expected, actual, expect.line)


def _check_escalation(
    step: StepResult, expect: Expectations, facts: CallFacts, window_end_s: float | None
) -> Check:
    wanted = expect.escalation
    assert wanted is not None
    if wanted.expected:
        expected = "an escalation"
        if wanted.trigger:
            expected += f" by {wanted.trigger}"
        if wanted.reason:
            expected += f" with reason containing {wanted.reason!r}"
    else:
        expected = "no escalation"
    events = step.events_of("escalation")
    transfers = [
        target
        for at, target in facts.transfers
        if at >= step.started_s and (window_end_s is None or at <= window_end_s)
    ]
    redirect = f"; transferred to {', '.join(transfers)}" if transfers else ""
    if facts.events_available:
        seen = [f"{e.get('trigger')} ({e.get('reason')})" for e in events]
        if not wanted.expected:
            ok = not events
        else:
            ok = any(
                (not wanted.trigger or e.get("trigger") == wanted.trigger)
                and (not wanted.reason or wanted.reason in str(e.get("reason", "")).lower())
                for e in events
            )
        actual = ("escalated: " + "; ".join(seen) if seen else "no escalation") + redirect
        return Check(
            step.index, "escalation", "pass" if ok else "fail", expected, actual, expect.line
        )
    if facts.rest_visible and not wanted.trigger and not wanted.reason:
        ok = bool(transfers) == wanted.expected
        actual = f"transferred to {', '.join(transfers)}" if transfers else "no transfer"
        return Check(
            step.index, "escalation", "pass" if ok else "fail", expected, actual, expect.line
        )
    return Check(
        step.index,
        "escalation",
        "unverified",
        expected,
        "server events not available" + redirect,
        expect.line,
    )
