from integrations.nlu.augment import augment, terse, variants
from integrations.nlu.normalise import normalise


def test_fillers_and_greetings_at_the_start_are_dropped():
    assert normalise("Um, yeah, hi, what time do you open?") == "what time do you open"
    assert normalise("Hey there. Are you open on Saturday?") == "are you open on saturday"
    assert normalise("okay so um we're moving away") == "we're moving away"


def test_a_lone_filler_or_answer_is_kept():
    assert normalise("Yeah.") == "yeah"
    assert normalise("Hi!") == "hi"
    assert normalise("yes please") == "yes please"
    assert normalise("Mm-hmm, you got it.") == "mm hmm you got it"
    assert normalise("uh huh yes") == "uh huh yes"


def test_no_is_never_dropped():
    assert normalise("No, that's not what I meant.") == "no that's not what i meant"


def test_empty_and_odd_input():
    assert normalise("") == ""
    assert normalise("  ...  ") == ""
    assert normalise("¿Dónde está?") == "dónde está"


def test_variants_wrap_requests_but_not_answers():
    assert variants("yes please") == []
    wrapped = variants("what are your opening hours")
    assert wrapped and all(
        "what are your opening hours" in v or len(v.split()) <= 3 for v in wrapped
    )
    assert variants("what are your opening hours") == wrapped  # deterministic
    assert terse("what are your hours") == "hours"


def test_augment_keeps_the_examples_and_drops_variants_shared_by_two_intents():
    examples = [("what are your hours", "hours"), ("your hours", "other")]
    out = augment(examples)
    assert out[:2] == examples
    assert ("hours", "hours") not in out or ("hours", "other") not in out
    assert all(intent == "hours" for text, intent in out[2:] if "what are your hours" in text)


def test_a_hi_heard_as_bye_before_a_request_is_dropped_but_a_goodbye_stays():
    assert normalise("And bye. Is my car ready yet? I dropped it off.") == (
        "is my car ready yet i dropped it off"
    )
    assert normalise("Okay, bye.") == "bye"
    assert normalise("Bye, thank you.") == "bye thank you"


def test_a_callers_introduction_before_the_request_is_dropped():
    assert normalise("Hello, this is Kevin Nguyen. I need to drop my appointment.") == (
        "i need to drop my appointment"
    )
    assert normalise("Um, hi, it's John Smith. My appointment's Monday at nine.") == (
        "my appointment's monday at nine"
    )
    assert normalise("This is Maria Lopez. Could we shift my visit?") == "could we shift my visit"
    assert normalise("Hi, this is [name], am I booked for Friday?") == "am i booked for friday"


def test_what_only_looks_like_an_introduction_stays():
    assert normalise("This is Sarah.") == "this is sarah"  # nothing after it
    assert normalise("It's Monday. Can I come in?") == "it's monday can i come in"
    assert normalise("It's urgent. My tooth broke in half.") == "it's urgent my tooth broke in half"
    assert normalise("this is john can I book") == "this is john can i book"  # no capital, no stop
