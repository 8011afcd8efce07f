"""``callagent bench amd``'s machinery: where the agent's audio fell at the callee's phone,
and the figures made of the results (no models: see tests/e2e/test_amd_bench_e2e.py)."""

from simulator.bench.amd_answers import MACHINE, PERSON, Answer
from simulator.bench.amd_call_path import first_name_for, number_for
from simulator.bench.amd_callee import PlayedAnswer, phone_times
from simulator.bench.amd_report import AnswerResult, format_report, summarize


def answer(truth: str, speech_end_s: float, beep_end_s: float | None = None) -> Answer:
    return Answer("a", truth, "x", "", "slt", "", b"", speech_end_s, beep_end_s)


def test_a_persons_opening_is_timed_from_the_end_of_their_hello_at_the_phone():
    hello = answer(PERSON, speech_end_s=1.0)
    times = phone_times(hello, PlayedAnswer(start_s=2.0, bot_segments=[(3.6, 8.0)]))
    assert times.opening_after_hello_s == 0.6
    assert times.bot_over_callee_s == 0.0


def test_an_opening_begun_over_the_hello_is_talking_over_the_person():
    hello = answer(PERSON, speech_end_s=1.5)
    times = phone_times(hello, PlayedAnswer(start_s=0.0, bot_segments=[(1.0, 1.3), (2.0, 6.0)]))
    assert times.bot_over_callee_s == 0.3
    assert times.opening_after_hello_s == 0.5  # the opening heard after the hello


def test_a_message_is_timed_from_the_beep_or_from_a_beepless_greetings_end():
    beep = answer(MACHINE, speech_end_s=4.0, beep_end_s=5.0)
    times = phone_times(beep, PlayedAnswer(start_s=1.0, bot_segments=[(6.3, 12.0)]))
    assert times.message_after_beep_s == 0.3 and times.message_after_greeting_s is None
    quiet = answer(MACHINE, speech_end_s=4.0)
    times = phone_times(quiet, PlayedAnswer(start_s=1.0, bot_segments=[(6.5, 12.0)]))
    assert times.message_after_greeting_s == 1.5 and times.message_after_beep_s is None
    assert phone_times(quiet, PlayedAnswer()).message_after_greeting_s is None  # never played


def result(truth: str, verdict: str, **timing: float | str | None) -> AnswerResult:
    fields: dict[str, object] = {
        "decided_after_s": None,
        "opening_after_speech_s": None,
        "message_after_beep_s": None,
    }
    fields.update(timing)
    return AnswerResult(
        "a", truth, "x", "", "slt", verdict, "", withdrawn=None, openings_held=None,
        disposition=None, **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def test_the_summary_counts_verdicts_and_leaves_unmeasured_calls_out():
    results = [
        result(PERSON, "human", opening_after_speech_s=0.4),
        result(PERSON, "machine", opening_after_speech_s=0.6, bot_over_callee_s=0.5),
        result(MACHINE, "machine", decided_after_s=2.5, message_after_beep_s=0.2),
        result(MACHINE, "human"),
        result(MACHINE, "none", error="no call record"),
    ]
    summary = summarize(results, path="call")
    assert summary["answers"] == 4 and summary["not_measured"] == 1
    assert summary["confusion"] == {
        "machine->human": 1,
        "machine->machine": 1,
        "person->human": 1,
        "person->machine": 1,
    }
    assert summary["accuracy"] == 0.5
    assert summary["people_taken_for_machines_rate"] == 0.5
    assert summary["people_talked_over"] == 1
    assert summary["hello_to_opening_s"]["n"] == 1  # the other heard the voicemail
    assert summary["machine_verdict_s"]["p50"] == 2.5
    lines = format_report(summary)
    assert "accuracy 50.0%" in lines and any("heard at the phone" in line for line in lines)


def test_every_call_has_its_own_number_and_contact_name():
    assert len({number_for(i) for i in range(300)}) == 300
    assert len({first_name_for(i) for i in range(300)}) == 300
