"""``callagent bench latency``: planning, parsing and reporting (the run itself is in
test_twilio_transport.py against a scripted bot)."""

from __future__ import annotations

import argparse

from simulator.bench import latency as bench
from simulator.commands import add_bench_parser


def test_bench_registers_latency_with_a_handler():
    parser = argparse.ArgumentParser()
    add_bench_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "latency", "--turns", "7", "--json", "out.json"])
    assert args.func is bench.run_latency
    assert args.turns == 7 and str(args.json) == "out.json" and args.url is None


def test_calls_rotate_intents_and_phrasings():
    questions = [["hours 1", "hours 2"], ["where 1"], ["price 1", "price 2", "price 3"]]
    calls = bench.plan_calls(questions, turns=8, per_call=3)
    assert [len(c) for c in calls] == [3, 3, 2]
    flat = [q for c in calls for q in c]
    assert flat[:6] == ["hours 1", "where 1", "price 1", "hours 2", "where 1", "price 2"]


def test_reference_agent_questions_skip_transfers_goodbyes_and_slots():
    from bot.agent import load_agent
    from bot.settings import REFERENCE_AGENT

    questions = bench.scripted_questions(load_agent(REFERENCE_AGENT))
    flat = {q for qs in questions for q in qs}
    assert "what are your opening hours" in flat
    assert "goodbye" not in flat and "operator" not in flat
    assert "I'd like to book an appointment" not in flat


def test_server_latency_events_are_collected_and_summarised():
    report = bench.LatencyReport(url="x")
    for total in (400.0, 500.0, 900.0):
        event = {
            "seq": 3,
            "type": "latency",
            "kind": "turn",
            "total_ms": total,
            "stages_ms": {"vad_stop": 200.0, "tts_ttfb": 80.5},
        }
        bench._collect_server_turn(event, report, "abc123")
    greeting = {"type": "latency", "kind": "greeting", "total_ms": 10.0, "stages_ms": {}}
    bench._collect_server_turn(greeting, report, "abc123")
    bench._collect_server_turn({"type": "nlu", "intent": "opening_hours"}, report, "abc123")
    report.turns = [bench.TurnResult(1, "q", v, 1000.0) for v in (450.0, 550.0, None)]
    s = report.summary()
    assert (s["turns"], s["answered"], s["unanswered"]) == (3, 2, 1)
    assert s["p50_ms"] == 500.0 and s["max_ms"] == 550.0
    assert s["server"]["turns"] == 3 and s["server"]["p50_ms"] == 500.0
    assert s["server"]["stages_p50_ms"] == {"vad_stop": 200.0, "tts_ttfb": 80.5}
    assert report.to_json()["summary"] == s
    assert report.server_turns[0] == {
        "call_id": "abc123",
        "total_ms": 400.0,
        "stages_ms": {"vad_stop": 200.0, "tts_ttfb": 80.5},
    }


def test_a_reply_is_an_answer_when_it_starts_like_the_intents_response():
    from bot.agent import load_agent
    from bot.settings import REFERENCE_AGENT
    from simulator.replies import expected_replies, reply_answers

    expected = expected_replies(load_agent(REFERENCE_AGENT))
    hours = expected["what are your opening hours"]
    heard = "We're open Monday to Friday from 8 in the morning to 6 in the evening"
    assert reply_answers(heard, hours)
    assert reply_answers(heard.replace("Friday", "fried egg"), hours)  # a word misheard
    assert not reply_answers("Sorry, could you say that again?", hours)
    assert not reply_answers("Did you mean our opening hours?", hours)
    assert not reply_answers("", hours)
    # numbers however written, and a word heard split in two
    prices = expected["how much does a cleaning cost"]
    assert reply_answers("I check up in cleaning as $95 without insurance, and a new", prices)
    assert not reply_answers("Sorry, could you say that again?", prices)
    # a known caller's variant counts too, its {placeholders} left out
    appointment = expected["when is my next appointment"]
    assert len(appointment) == 2
    assert reply_answers("I can't see an upcoming appointment for this number", appointment)
    known = "Your next appointment is your cleaning on Friday with Dr Lee"
    assert reply_answers(known, appointment)
