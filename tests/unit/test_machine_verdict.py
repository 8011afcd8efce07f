"""Each answering-machine verdict strategy on its own evidence."""

import pytest

from integrations.outbound.dispositions import MachineVerdict
from integrations.speech.beep import Beep
from processors.machine_verdict import (
    BeepVerdict,
    Evidence,
    ProviderVerdict,
    SpeechSpan,
    SpeechTimingVerdict,
    WordsVerdict,
    default_strategies,
)

HUMAN = MachineVerdict.HUMAN
MACHINE = MachineVerdict.MACHINE


@pytest.mark.parametrize(
    ("answered_by", "verdict"),
    [
        ("human", HUMAN),
        ("machine_start", MACHINE),
        ("machine_end_beep", MACHINE),
        ("machine_end_silence", MACHINE),
        ("machine_end_other", MACHINE),
        ("fax", MACHINE),
        ("unknown", None),
        (None, None),
        ("something-new", None),
    ],
)
def test_provider_answered_by(answered_by: str | None, verdict: MachineVerdict | None) -> None:
    decided = ProviderVerdict().decide(Evidence(provider=answered_by))

    assert (decided.verdict if decided else None) == verdict
    assert decided is None or decided.source == "provider"


def test_a_beep_is_a_machine() -> None:
    assert BeepVerdict().decide(Evidence()) is None
    decided = BeepVerdict().decide(Evidence(beeps=[Beep(3.0, 3.4, 1000.0)]))
    assert decided is not None and decided.verdict is MACHINE and decided.source == "beep"


@pytest.mark.parametrize(
    "text",
    [
        "Hi, you've reached Maria, please leave a message after the beep",
        "The person you are calling is not available",
        "at the tone please record your message",
        "Your call has been forwarded to an automatic voice mail system",
        "Thank you for calling Riverside Medical. For appointments press 1",
        "Hi, you reach Maria",
        "sorry I missed your call",
        "the mailbox is full",
        "I can’t take your call right now",
    ],
)
def test_machine_words(text: str) -> None:
    decided = WordsVerdict().decide(Evidence(transcripts=[text]))

    assert decided is not None and decided.verdict is MACHINE and decided.source == "words"


@pytest.mark.parametrize(
    "text",
    [
        "Hello?",
        "Hi, this is Maria.",
        "Yeah, hello, who's this?",
        "Speaking.",
    ],
)
def test_what_people_say_on_picking_up_decides_nothing(text: str) -> None:
    assert WordsVerdict().decide(Evidence(transcripts=[text])) is None


def timing(now: float, *spans: tuple[float, float | None]) -> MachineVerdict | None:
    evidence = Evidence(now_s=now, speech=[SpeechSpan(s, e) for s, e in spans])
    decided = SpeechTimingVerdict(long_greeting_secs=2.4, pause_secs=1.0).decide(evidence)
    return decided.verdict if decided else None


def test_a_short_hello_then_quiet_is_a_person() -> None:
    assert timing(1.0, (0.5, None)) is None  # still speaking
    assert timing(1.5, (0.5, 1.1)) is None  # a pause, not yet long enough
    assert timing(2.1, (0.5, 1.1)) is HUMAN


def test_a_long_unbroken_greeting_is_a_machine_before_it_ends() -> None:
    assert timing(2.7, (0.4, None)) is None
    assert timing(2.8, (0.3, 1.2), (1.6, None)) is MACHINE  # short pauses join


def test_speech_after_a_long_pause_is_not_the_greeting() -> None:
    assert timing(4.5, (0.3, 1.0), (2.5, None)) is HUMAN


def test_nothing_heard_decides_nothing() -> None:
    assert all(s.decide(Evidence(now_s=5.0)) is None for s in default_strategies())


def timing_of(evidence: Evidence, *, sound_fallback: bool = True) -> MachineVerdict | None:
    decided = SpeechTimingVerdict(sound_fallback=sound_fallback).decide(evidence)
    return decided.verdict if decided else None


def test_a_slow_long_hello_is_not_a_machine_without_a_machines_words() -> None:
    slow_hello = Evidence(now_s=3.9, speech=[SpeechSpan(0.4, None)])  # 3.5 s and going on
    assert timing_of(slow_hello) is None
    assert timing_of(Evidence(now_s=4.5, speech=[SpeechSpan(0.4, None)])) is MACHINE  # 4.1 s


@pytest.mark.parametrize(
    "heard", ["hi you've", "the person", "please", "thank you for", "not available"]
)
def test_a_machines_first_words_make_a_long_greeting_a_machine_sooner(heard: str) -> None:
    evidence = Evidence(now_s=3.0, speech=[SpeechSpan(0.4, None)], transcripts=[heard])
    assert timing_of(evidence) is MACHINE  # 2.6 s with a machine's words


@pytest.mark.parametrize(
    "heard",
    ["yes good afternoon carter residence", "Hello, Maria speaking.", "hi who's calling"],
)
def test_a_persons_words_leave_a_long_hello_to_the_other_strategies(heard: str) -> None:
    evidence = Evidence(now_s=6.0, speech=[SpeechSpan(0.4, None)], transcripts=[heard])
    assert timing_of(evidence) is None
    assert WordsVerdict().decide(evidence) is None


def test_sound_the_vad_never_heard_is_a_machine_only_when_long() -> None:
    unheard = Evidence(now_s=3.0, sound=[SpeechSpan(0.3, None)])
    assert timing_of(unheard) is None
    assert timing_of(Evidence(now_s=4.5, sound=[SpeechSpan(0.3, None)])) is MACHINE
    assert timing_of(Evidence(now_s=6.0, sound=[SpeechSpan(0.3, 1.0)])) is None  # a cough
    assert (
        timing_of(Evidence(now_s=4.5, sound=[SpeechSpan(0.3, None)]), sound_fallback=False) is None
    )


def test_a_persons_verdict_waits_for_the_words_still_being_transcribed() -> None:
    said = [SpeechSpan(0.4, 3.9)]
    assert timing_of(Evidence(now_s=5.0, speech=said)) is HUMAN
    assert timing_of(Evidence(now_s=5.0, speech=said, words_pending=True)) is None
    # the last piece's words, in while the verdict waited: a machine's after all
    late = Evidence(now_s=5.2, speech=said, words_pending=False, transcripts=["please leave a"])
    assert timing_of(late) is MACHINE
    assert timing_of(Evidence(now_s=6.5, speech=said, words_pending=True)) is HUMAN  # no words
