"""``callagent bench understanding``: reading calls from events, figures, set and options.

The outcome of a call is read from synthetic event sequences shaped like the agent's
``/api/calls/{id}/events`` answers (agent clock), with the caller's speech on the
phone's clock.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from simulator.phone import TurnMeasurement
from simulator.understanding import report, request_call
from simulator.understanding.bench import (
    add_parser,
    parse_conditions,
    pick_requests,
    plan_jobs,
    render_clips,
)
from simulator.understanding.outcomes import (
    Decision,
    Outcome,
    classify,
    read_call,
    request_transcript,
)
from simulator.understanding.request_call import Condition, Job, phone_script
from simulator.understanding.requests import CallerRequest, RequestSetError, load_request_set
from simulator.understanding.results import RequestCall, confusion, group_stats, summarize
from simulator.understanding.voices import parse_voice, sentences, voice_list

ROOT = Path(__file__).parents[2]
HELD_OUT = ROOT / "scenarios" / "dental" / "requests" / "understanding.yaml"
DEV_SET = ROOT / "scenarios" / "dental" / "requests" / "understanding-dev.yaml"

# The phone heard the greeting 0.4 s after the agent's clock says it started, so agent
# time t is phone time t + 0.4. The caller speaks from 6.0 to 10.0 (phone).
OFFSET = 0.4
ONSET, END = 6.0, 10.0


def ev(type_: str, phone_s: float, **data: Any) -> dict[str, Any]:
    """An event at ``phone_s`` on the phone's clock, stamped on the agent's."""
    return {"type": type_, "at_s": round(phone_s - OFFSET, 3), **data}


def nlu(phone_s: float, intent: str, band: str, confidence: float = 0.9) -> dict[str, Any]:
    """An NLU decision event."""
    return ev("nlu", phone_s, intent=intent, band=band, confidence=confidence)


def greeting() -> list[dict[str, Any]]:
    """The greeting's events (the clock anchor is its first bot_started)."""
    return [
        ev("bot_started", 0.5),
        ev("bot_started", 0.5),
        ev("latency", 0.5, kind="greeting"),
        ev("bot_stopped", 4.9),
    ]


def read(
    intended: str, events: list[dict[str, Any]], hand_off_intents: frozenset[str] = frozenset()
):
    """Read a call whose greeting the phone heard at 0.5 s."""
    return read_call(
        intended,
        events,
        greeting_heard_s=0.5,
        caller_onset_s=ONSET,
        caller_end_s=END,
        hand_off_intents=hand_off_intents,
    )


# Outcomes and cut-offs


def test_a_complete_request_acted_on_its_intent_is_acted_right_and_not_cut_off():
    events = [
        *greeting(),
        ev("user_started", 6.2),
        ev("user_stopped", 10.3),
        nlu(10.4, "reschedule_appointment", "act"),
        ev("reply", 10.4, intent="reschedule_appointment"),
        ev("bot_started", 10.6),
    ]
    reading = read("reschedule_appointment", events)
    assert reading.outcome is Outcome.ACTED_RIGHT
    assert not reading.cut_off
    assert reading.cut_at_s is None
    assert reading.decision is not None and reading.decision.at_s == pytest.approx(10.4)
    assert reading.request_decisions == (0,)


def handed_off(intended: str, decided: str, band: str, trigger: str):
    """Read a request whose decision was followed by a hand-off to a person."""
    events = [
        *greeting(),
        ev("user_started", 6.2),
        ev("user_stopped", 10.3),
        nlu(10.4, decided, band),
        ev("reply", 10.4, intent=None, hands_off=True),
        ev("escalation", 10.41, trigger=trigger),
        ev("bot_started", 10.6),
    ]
    return read(intended, events, frozenset({"talk_to_human", "emergency"}))


def test_a_hand_off_is_what_the_caller_got_whatever_the_decision_said():
    # "Representative." read below the bar, put through on the escalation's own pattern
    asked = handed_off("talk_to_human", "out_of_scope", "repair", "explicit_request")
    assert asked.outcome is Outcome.ACTED_RIGHT and asked.handed_off
    # a price question answered, then handed off as angry: the caller did not ask for that
    priced = handed_off("pricing", "pricing", "act", "negative_sentiment")
    assert priced.outcome is Outcome.ACTED_WRONG and priced.handed_off
    # an emergency the classifier missed still reached a person
    assert handed_off("emergency", "out_of_scope", "repair", "negative_sentiment").outcome is (
        Outcome.ACTED_RIGHT
    )
    # a hand-off after the caller spoke again belongs to that later turn
    events = [
        *greeting(),
        ev("user_started", 6.2),
        ev("user_stopped", 10.3),
        nlu(10.4, "pricing", "act"),
        ev("user_started", 12.0),
        ev("escalation", 13.0, trigger="negative_sentiment"),
    ]
    assert read("pricing", events).outcome is Outcome.ACTED_RIGHT


def test_a_decision_on_a_leading_filler_cuts_the_caller_off_and_is_the_outcome():
    # "Um, yeah." -> acted on as yes while the caller goes on with the request
    events = [
        *greeting(),
        ev("user_started", 6.2),
        ev("user_stopped", 7.1),
        nlu(7.2, "affirm", "act"),
        ev("bot_started", 7.4),
        ev("user_started", 7.5),
        ev("interruption", 7.5),
        ev("user_stopped", 10.3),
        nlu(10.4, "book_appointment", "act"),
    ]
    reading = read("book_appointment", events)
    assert reading.cut_off
    assert reading.cut_at_s == pytest.approx(7.2)
    assert reading.outcome is Outcome.ACTED_WRONG
    assert reading.decision is not None and reading.decision.intent == "affirm"
    assert reading.request_decisions == (0, 1)


def test_a_fragment_decided_after_the_caller_stopped_is_answered_in_fragments():
    # "Hi, um, half my molar is gone..." heard as "Bye." at first; the rest came later
    events = [
        *greeting(),
        ev("user_started", 6.2),
        ev("user_stopped", 10.2),
        nlu(10.3, "goodbye", "act"),
        ev("bot_started", 10.5),
        ev("ended", 13.0, how="end"),
        nlu(13.1, "emergency", "act"),
    ]
    reading = read("emergency", events)
    assert not reading.cut_off
    assert reading.fragmented
    assert reading.outcome is Outcome.ACTED_WRONG
    assert reading.request_decisions == (0, 1)


def test_a_decision_on_speech_after_the_request_is_not_part_of_it():
    # babble makes a turn of its own after the request was answered
    events = [
        *greeting(),
        ev("user_started", 6.2),
        nlu(10.3, "insurance", "act"),
        ev("user_started", 12.0),
        nlu(13.0, "out_of_scope", "repair"),
    ]
    reading = read("insurance", events)
    assert not reading.fragmented
    assert reading.request_decisions == (0,)


def test_the_reply_starting_inside_the_request_is_a_cut_off_too():
    # the decision came from noise before the caller spoke; its reply talks over them
    events = [*greeting(), nlu(5.8, "affirm", "repair"), ev("bot_started", 6.5)]
    reading = read("opening_hours", events)
    assert reading.cut_off
    assert reading.cut_at_s == pytest.approx(6.5)


def test_decisions_before_the_caller_spoke_do_not_count_as_the_request_outcome():
    events = [
        *greeting(),
        nlu(5.5, "goodbye", "act"),  # background noise before the request
        nlu(10.5, "insurance", "act"),
    ]
    reading = read("insurance", events)
    assert reading.outcome is Outcome.ACTED_RIGHT
    assert not reading.cut_off
    assert reading.request_decisions == (1,)


def test_a_decision_just_after_the_caller_stopped_is_not_a_cut_off():
    reading = read("pricing", [*greeting(), nlu(END, "pricing", "clarify")])
    assert not reading.cut_off
    assert reading.outcome is Outcome.CLARIFIED_RIGHT


def test_a_hang_up_on_a_fragment_is_acted_wrong_and_cut_off():
    # "Hi, um, I was hoping to stop by..." heard as "Bye." -> the agent ends the call
    events = [
        *greeting(),
        nlu(7.0, "goodbye", "act"),
        ev("reply", 7.0, intent="goodbye", ends_call=True),
        ev("bot_started", 7.2),
        ev("ended", 9.0, how="end"),
    ]
    reading = read("book_appointment", events)
    assert reading.outcome is Outcome.ACTED_WRONG
    assert reading.cut_off


def test_no_decision_after_the_request_is_no_decision():
    events = [*greeting(), ev("user_started", 6.2), ev("resumed", 10.2)]
    reading = read("location", events)
    assert reading.outcome is Outcome.NO_DECISION
    assert reading.decision is None
    assert not reading.cut_off


def test_a_request_in_context_is_judged_alone_and_the_context_decision_is_kept():
    # context line 5.5-7.0, decided at 7.3, answered 7.5-11.0; the request 12.0-13.0
    events = [
        *greeting(),
        ev("user_started", 5.5),
        nlu(7.3, "next_appointment", "act"),
        ev("bot_started", 7.5),
        ev("bot_stopped", 11.0),
        ev("user_started", 12.0),
        nlu(13.4, "affirm", "act"),
        ev("bot_started", 13.6),
    ]
    reading = read_call(
        "affirm", events, greeting_heard_s=0.5, caller_onset_s=12.0, caller_end_s=13.0
    )
    assert reading.outcome is Outcome.ACTED_RIGHT
    assert reading.decision is not None and reading.decision.intent == "affirm"
    assert not reading.cut_off and not reading.fragmented
    assert reading.request_decisions == (1,)
    assert reading.before is not None and reading.before.intent == "next_appointment"
    turns = [
        {"seq": 1, "kind": "caller", "caller_text": "when is my next appointment", "intent": "x"},
        {"seq": 2, "kind": "agent"},
        {"seq": 3, "kind": "caller", "caller_text": "yeah", "intent": "affirm"},
    ]
    assert request_transcript(turns, reading.request_decisions) == "yeah"


def test_without_the_greeting_anchor_nothing_is_read():
    reading = read("location", [nlu(10.5, "location", "act")])
    assert reading.outcome is Outcome.NO_DECISION
    assert not reading.cut_off


@pytest.mark.parametrize(
    ("intended", "intent", "band", "outcome"),
    [
        ("opening_hours", "opening_hours", "act", Outcome.ACTED_RIGHT),
        ("opening_hours", "location", "act", Outcome.ACTED_WRONG),
        ("opening_hours", "opening_hours", "clarify", Outcome.CLARIFIED_RIGHT),
        ("opening_hours", "location", "clarify", Outcome.CLARIFIED_WRONG),
        ("opening_hours", "opening_hours", "repair", Outcome.REPAIRED),
        ("opening_hours", "out_of_scope", "repair", Outcome.REPAIRED),
        ("kb:whitening", "kb:whitening", "act", Outcome.ACTED_RIGHT),
        ("out_of_scope", "out_of_scope", "repair", Outcome.ACTED_RIGHT),
        ("out_of_scope", "pricing", "act", Outcome.ACTED_WRONG),
        ("out_of_scope", "pricing", "clarify", Outcome.CLARIFIED_WRONG),
        ("out_of_scope", "pricing", "repair", Outcome.REPAIRED),
    ],
)
def test_classify(intended: str, intent: str, band: str, outcome: Outcome):
    assert classify(intended, Decision(1.0, intent, band)) is outcome


def test_nothing_recognised_is_a_repair_even_for_an_out_of_scope_request():
    empty = Decision(1.0, "out_of_scope", "repair", path="empty")
    assert classify("out_of_scope", empty) is Outcome.REPAIRED
    heard = Decision(1.0, "out_of_scope", "repair", path="classifier")
    assert classify("out_of_scope", heard) is Outcome.ACTED_RIGHT


def test_a_clarifying_question_offering_the_intended_intent_among_two_is_clarified_right():
    offered = ["book_appointment", "cancel_appointment"]
    events = [
        *greeting(),
        nlu(10.5, "book_appointment", "clarify", 0.55),
        ev("reply", 10.5, intent="book_appointment", offered=offered),
        ev("bot_started", 10.6),
    ]
    reading = read("cancel_appointment", events)
    assert reading.decision is not None
    assert reading.decision.offered == ("book_appointment", "cancel_appointment")
    assert reading.outcome is Outcome.CLARIFIED_RIGHT
    assert read("location", events).outcome is Outcome.CLARIFIED_WRONG
    offered_once = Decision(1.0, "book_appointment", "act", offered=("cancel_appointment",))
    assert classify("cancel_appointment", offered_once) is Outcome.ACTED_WRONG  # acts count alone


def test_classify_without_a_decision():
    assert classify("location", None) is Outcome.NO_DECISION


# The request's transcript from the call record


def turn(seq: int, kind: str, text: str | None = None, intent: str | None = None):
    """A call-record turn as ``/api/calls/{id}`` returns it."""
    return {"seq": seq, "kind": kind, "caller_text": text, "intent": intent}


def test_the_transcript_joins_the_caller_turns_of_the_request_decisions():
    turns = [
        turn(0, "greeting"),
        turn(1, "caller", "okay", "affirm"),  # decision 0: noise before the request
        turn(2, "caller", "Um, yeah.", "affirm"),  # decision 1
        turn(3, "caller", "I'd like to book", None),  # transcribed, never decided
        turn(4, "caller", "a cleaning next week", "book_appointment"),  # decision 2
        turn(5, "caller", "later", "goodbye"),  # decision 3: after the request
    ]
    assert request_transcript(turns, (1, 2)) == "Um, yeah. I'd like to book a cleaning next week"


def test_a_turn_joined_to_its_fragment_replaces_the_fragment_in_the_transcript():
    # FragmentJoiner: the caller went on after a fragment; the later turn was decided on the
    # joined words, and the record stores them as that turn's caller text.
    turns = [
        turn(0, "greeting"),
        turn(1, "caller", "I need a crown on my back tooth.", "pricing"),  # decision 0
        turn(2, "agent"),
        turn(
            3,
            "caller",
            "I need a crown on my back tooth. Rustily, what does that cost with you?",
            "pricing",
        ),  # decision 1: the fragment's words and its own
    ]
    assert request_transcript(turns, (0, 1)) == (
        "I need a crown on my back tooth. Rustily, what does that cost with you?"
    )


def test_a_turn_repeating_only_part_of_the_earlier_words_is_appended():
    turns = [
        turn(1, "caller", "a crown please", "pricing"),
        turn(2, "caller", "a crown", "pricing"),
    ]
    assert request_transcript(turns, (0, 1)) == "a crown please a crown"


def test_an_empty_decision_adds_no_words_and_a_mismatch_gives_none():
    turns = [turn(0, "greeting"), turn(1, "caller", None, "out_of_scope")]
    assert request_transcript(turns, (0,)) == ""
    assert request_transcript(turns, (1,)) is None
    assert request_transcript(turns, ()) is None


# Figures


def row(intent: str, outcome: Outcome, **kw: Any) -> RequestCall:
    """A measured call."""
    base: dict[str, Any] = {"voice": "slt", "condition": "clean", "style": "plain"}
    base.update(kw)
    return RequestCall(request=f"a {intent} request", intent=intent, outcome=outcome.value, **base)


def test_group_stats_counts_outcomes_cut_offs_wer_and_latency_of_complete_requests():
    rows = [
        row("location", Outcome.ACTED_RIGHT, word_errors=1, words=10, latency_ms=400.0),
        row("location", Outcome.ACTED_WRONG, fragmented=True, latency_ms=50.0),
        row("location", Outcome.ACTED_WRONG, decided_intent="affirm", cut_off=True,
            word_errors=5, words=10, latency_ms=100.0),
        row("pricing", Outcome.REPAIRED, latency_ms=600.0),
        row("pricing", Outcome.NO_DECISION, error="TimeoutError: no bot speech"),
    ]  # fmt: skip
    stats = group_stats(rows)
    assert stats["calls"] == 5
    assert stats["counts"]["acted_right"] == 1
    assert stats["counts"]["acted_wrong"] == 2
    assert stats["rates_pct"]["repaired"] == 20.0
    assert stats["cut_off"] == 1
    assert stats["fragmented"] == 1
    assert stats["wer_pct"] == 30.0
    assert stats["wer_calls"] == 2
    assert stats["latency_complete_ms"]["n"] == 2  # cut off and fragmented calls left out
    assert stats["latency_complete_ms"]["p50"] == 500.0
    assert stats["errors"] == 1


def test_confusion_names_what_the_agent_acted_on():
    rows = [
        row("book_appointment", Outcome.ACTED_RIGHT, decided_intent="book_appointment"),
        row("book_appointment", Outcome.ACTED_WRONG, decided_intent="affirm"),
        row("book_appointment", Outcome.CLARIFIED_WRONG, decided_intent="reschedule"),
        row("book_appointment", Outcome.REPAIRED, decided_intent="out_of_scope"),
        row("out_of_scope", Outcome.ACTED_RIGHT, decided_intent="out_of_scope"),
        row("out_of_scope", Outcome.NO_DECISION),
    ]
    assert confusion(rows) == {
        "book_appointment": {
            "book_appointment": 1,
            "affirm": 1,
            "(clarified)": 1,
            "(repaired)": 1,
        },
        "out_of_scope": {"out_of_scope": 1, "(none)": 1},
    }


def test_summary_is_per_condition_with_intent_voice_and_style_tables():
    rows = [
        row("location", Outcome.ACTED_RIGHT),
        row("location", Outcome.REPAIRED, condition="babble@10dB", voice="awb"),
    ]
    summary = summarize(rows)
    assert summary["overall"]["calls"] == 2
    assert set(summary["conditions"]) == {"clean", "babble@10dB"}
    babble = summary["conditions"]["babble@10dB"]
    assert set(babble["by_voice"]) == {"awb"}
    assert babble["by_intent"]["location"]["counts"]["repaired"] == 1
    assert set(babble) >= {
        "overall",
        "by_intent",
        "by_voice",
        "by_style",
        "by_hearing",
        "confusion",
    }


def test_calls_are_grouped_by_how_well_their_words_were_heard_best_first():
    rows = [
        row("location", Outcome.REPAIRED, word_errors=5, words=10),
        row("location", Outcome.ACTED_RIGHT, word_errors=0, words=10),
        row("location", Outcome.ACTED_RIGHT, word_errors=1, words=10),
        row("location", Outcome.CLARIFIED_RIGHT, word_errors=2, words=10),
        row("location", Outcome.ACTED_RIGHT, word_errors=3, words=10),
        row("location", Outcome.NO_DECISION, error="TimeoutError: no bot speech"),
    ]
    by_hearing = summarize(rows)["conditions"]["clean"]["by_hearing"]
    assert list(by_hearing) == [
        "words exact",
        "under 20 % wrong",
        "20-40 % wrong",
        "40 % or more wrong",
        "not scored",
    ]
    assert by_hearing["20-40 % wrong"]["counts"]["clarified_right"] == 1
    assert by_hearing["20-40 % wrong"]["counts"]["acted_right"] == 1
    assert by_hearing["40 % or more wrong"]["counts"]["repaired"] == 1
    text = "\n".join(report.console_lines(report.to_json(rows, {})))
    assert "  hearing " in text and "  40 % or more wrong " in text


def test_a_run_saved_without_a_grouping_still_prints_and_renders():
    data = report.to_json([row("location", Outcome.ACTED_RIGHT)], {})
    del data["summary"]["conditions"]["clean"]["by_hearing"]
    assert "  hearing " not in "\n".join(report.console_lines(data))
    assert "By hearing" not in report.html(data)


def test_report_prints_and_renders_html_with_escaped_text():
    rows = [
        row("location", Outcome.ACTED_RIGHT, decided_intent="location", latency_ms=420.0),
        row("location", Outcome.ACTED_WRONG, decided_intent="goodbye", cut_off=True,
            cut_after_ms=900.0, transcript="<b>bye</b>"),
    ]  # fmt: skip
    data = report.to_json(rows, {"wall_time_s": 12.0, "calls_at_once": 4, "voices": ["slt"]})
    text = "\n".join(report.console_lines(data))
    assert "== clean: 2 calls: acted right 50.0 %" in text
    assert "ACTED WRONG 50.0 %" in text
    assert "caller cut off 50.0 %" in text
    assert "location                 location 1, goodbye 1" in text
    page = report.html(data)
    assert "&lt;b&gt;bye&lt;/b&gt;" in page and "<b>bye</b>" not in page
    assert page.count("<svg") == 3


# Voices, requests, conditions


def test_sentences_split_a_two_sentence_request():
    assert sentences("Hi, I booked a checkup. But I can't come, can we move it?") == [
        "Hi, I booked a checkup.",
        "But I can't come, can we move it?",
    ]
    assert sentences("hours?") == ["hours?"]


def test_voices_and_rates():
    assert parse_voice("espeak:en-sc@1.2") == ("espeak:en-sc", 1.2)
    assert parse_voice("slt") == ("slt", 1.0)
    for bad in ("nobody", "slt@fast", "slt@3"):
        with pytest.raises(ValueError):
            parse_voice(bad)
    assert voice_list("slt, awb,slt") == ["slt", "awb"]
    assert len(voice_list("all")) > len(voice_list("default")) >= 4


def test_limit_takes_requests_in_turn_from_each_intent():
    requests = [
        CallerRequest(text=f"{intent} {i}", intent=intent)
        for intent in ("a", "b", "c")
        for i in range(3)
    ]
    assert [r.text for r in pick_requests(requests, 4)] == ["a 0", "b 0", "c 0", "a 1"]
    assert len(pick_requests(requests, None)) == 9


def test_conditions_and_jobs():
    conditions = parse_conditions("none,babble", "10,20")
    assert [c.name for c in conditions] == ["clean", "babble@10dB", "babble@20dB"]
    with pytest.raises(ValueError):
        parse_conditions("traffic", "10")
    with pytest.raises(ValueError):
        parse_conditions("babble", "loud")
    requests = [CallerRequest(text="hours?", intent="opening_hours")]
    jobs = plan_jobs(requests, ["slt", "awb"], [Condition(), conditions[1]], seed=1)
    assert len(jobs) == 4
    assert len({j.seed for j in jobs}) == 4


def test_the_command_parses_its_options():
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["understanding", "--voices", "slt", "--noise", "none,babble", "--snr", "10",
         "--calls-at-once", "2", "--limit", "3", "--json", "out.json", "--html", "out.html"]
    )  # fmt: skip
    assert args.calls_at_once == 2 and args.limit == 3
    assert args.html == Path("out.html")
    assert args.set.name == "understanding.yaml"


# The held-out set


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


def test_the_held_out_set_covers_every_intent_and_kb_entry_and_is_not_the_agent_file(agent):
    held_out = load_request_set(HELD_OUT)
    assert held_out.agent_file == (ROOT / "bot" / "agents" / "dental_front_desk.yaml").resolve()
    counts: dict[str, int] = {}
    for r in held_out.requests:
        counts[r.intent] = counts.get(r.intent, 0) + 1
    names = [i.name for i in agent.intents]
    kb = [i.name for i in agent.intents if i.name.startswith("kb:")]
    assert kb, "the reference agent's knowledge base trains kb:<id> intents"
    for name in names:
        assert counts.get(name, 0) >= 5, name
    assert counts.get("out_of_scope", 0) >= 10
    assert set(counts) <= {*names, "out_of_scope"}
    own = {_words(e) for i in agent.intents for e in i.examples}
    assert not [r.text for r in held_out.requests if _words(r.text) in own]
    styles = {r.style for r in held_out.requests}
    assert styles >= {"filler_first", "two_sentences", "terse", "dates_names"}


# Context: a yes, a no or a goodbye said after a context line


def _set(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "set.yaml"
    path.write_text("agent: agent.yaml\n" + body)
    return path


def test_a_context_line_per_intent_can_be_overridden_or_dropped_per_request(tmp_path: Path):
    path = _set(
        tmp_path,
        "context:\n"
        "  affirm: When is my next appointment?\n"
        "  goodbye: What time do you open?\n"
        "requests:\n"
        "  - {text: yeah, intent: affirm}\n"
        "  - {text: sure, intent: affirm, context: 'Do you take Cigna?'}\n"
        "  - {text: bye, intent: goodbye, context: ''}\n"
        "  - {text: 'hours?', intent: opening_hours}\n",
    )
    loaded = load_request_set(path)
    assert [r.context for r in loaded.requests] == [
        "When is my next appointment?",
        "Do you take Cigna?",
        None,
        None,
    ]
    assert loaded.context == {
        "affirm": "When is my next appointment?",
        "goodbye": "What time do you open?",
    }


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        (  # a misspelt intent
            "context:\n  afirm: When is my appointment?\nrequests:\n"
            "  - {text: yeah, intent: affirm}\n",
            3,
            "context.afirm: no request has intent 'afirm' (they have: affirm)",
        ),
        (  # a blank line
            "context:\n  affirm: When is my appointment?\n  deny: '  '\nrequests:\n"
            "  - {text: yeah, intent: affirm}\n  - {text: nope, intent: deny}\n",
            4,
            "context.deny: a context line must say something",
        ),
        (  # not text
            "context:\n  affirm: [a, b]\nrequests:\n  - {text: yeah, intent: affirm}\n",
            3,
            "context.affirm: must be text",
        ),
        (  # a request's own blank context
            "requests:\n  - text: yeah\n    intent: affirm\n    context: ' '\n",
            5,
            "requests[1].context: a context line must say something",
        ),
    ],
)
def test_a_bad_context_is_an_error_naming_its_line(tmp_path: Path, body: str, line: int, words):
    path = _set(tmp_path, body)
    with pytest.raises(RequestSetError) as caught:
        load_request_set(path)
    assert f"{path}:{line}: {words}" in str(caught.value)


def test_both_request_sets_say_the_same_context_lines_before_answers_and_goodbyes():
    dev, held_out = load_request_set(DEV_SET), load_request_set(HELD_OUT)
    assert dev.context == held_out.context
    assert set(dev.context) == {"affirm", "deny", "goodbye"}
    for request_set in (dev, held_out):
        for r in request_set.requests:
            assert (r.context is not None) == (r.intent in dev.context), r.intent


def test_the_phone_script_is_the_context_line_then_the_request():
    plain = CallerRequest(text="hours?", intent="opening_hours")
    answer = CallerRequest(text="yup", intent="affirm", context="When is my appointment?")
    assert phone_script(plain) == ["hours?"]
    assert phone_script(answer) == ["When is my appointment?", "yup"]


def test_the_context_line_is_rendered_in_the_request_voice(monkeypatch: pytest.MonkeyPatch):
    rendered: list[tuple[str, str]] = []

    def spoken(text: str, voice: str) -> bytes:
        rendered.append((text, voice))
        return text.encode()

    monkeypatch.setattr("simulator.understanding.voices.spoken", spoken)
    requests = [
        CallerRequest(text="yup", intent="affirm", context="When is my appointment?"),
        CallerRequest(text="nope", intent="deny", context="When is my appointment?"),
    ]
    clips = render_clips(requests, ["slt", "awb"])
    assert set(clips) == {
        (t, v) for t in ("When is my appointment?", "yup", "nope") for v in ("slt", "awb")
    }
    assert len(rendered) == len(set(rendered)) == 6  # a shared context line is rendered once


class ScriptedCall:
    """A phone call that logs what the caller does; each wait takes a second of call time."""

    call_sid = "CA0001"

    def __init__(self) -> None:
        self.t = 0.0
        self.closed = False
        self.actions: list[tuple[str, Any]] = []

    def now(self) -> float:
        return self.t

    async def wait_for_bot_speech_start(self, timeout: float, *, after: float | None = None):
        self.actions.append(("bot speaks", after))
        self.t += 1.0
        return self.t

    async def wait_for_bot_silence(self, min_silence_s: float, timeout: float) -> float:
        self.actions.append(("bot quiet", None))
        self.t += 3.0
        return self.t

    async def say(self, clip: bytes) -> TurnMeasurement:
        onset = self.t
        self.t += 2.0
        self.actions.append(("say", clip))
        return TurnMeasurement(onset, self.t)

    async def hang_up(self) -> None:
        self.closed = True


def _talk(monkeypatch: pytest.MonkeyPatch, request: CallerRequest) -> tuple[Any, ScriptedCall]:
    call = ScriptedCall()

    async def dial(target: Any, job: Job) -> ScriptedCall:
        return call

    monkeypatch.setattr(request_call, "_dial", dial)
    target = SimpleNamespace(base_url=None, operator_token=None, rest=None)
    clips = {(line, "slt"): line.encode() for line in phone_script(request)}

    async def run() -> Any:
        async with httpx.AsyncClient() as http:
            return await request_call.talk(target, Job(request, "slt", Condition(), 0), clips, http)

    return asyncio.run(run()), call


def test_the_call_says_the_context_line_hears_the_reply_out_then_says_the_request(
    monkeypatch: pytest.MonkeyPatch,
):
    request = CallerRequest(text="yup", intent="affirm", context="When is my appointment?")
    heard, call = _talk(monkeypatch, request)
    assert call.actions == [
        ("bot speaks", None),  # the greeting
        ("bot quiet", None),
        ("say", b"When is my appointment?"),
        ("bot speaks", 6.0),  # the reply to the context line, after it ended
        ("bot quiet", None),
        ("say", b"yup"),
        ("bot speaks", 12.0),  # the reply to the request
        ("bot quiet", None),
    ]
    assert heard.row.error is None
    assert heard.row.context == "When is my appointment?"
    assert heard.context_s == (4.0, 6.0)
    assert heard.request_said and heard.onset_s == 10.0 and heard.end_s == 12.0


def test_a_request_without_context_is_the_call_s_first_words(monkeypatch: pytest.MonkeyPatch):
    heard, call = _talk(monkeypatch, CallerRequest(text="hours?", intent="opening_hours"))
    assert [a for a in call.actions if a[0] == "say"] == [("say", b"hours?")]
    assert heard.context_s is None and heard.row.context is None
    assert heard.onset_s == 4.0
