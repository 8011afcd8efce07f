from datetime import datetime

import pytest

from integrations.nlu.entities import EntityExtractor, default_parsers, normalise

NOW = datetime(2026, 11, 21, 10, 0)  # a Saturday


@pytest.fixture(scope="module")
def extract():
    return EntityExtractor(default_parsers(clock=lambda: NOW)).extract


@pytest.mark.parametrize(
    ("text", "value", "has_time"),
    [
        ("next Tuesday at three", "2026-11-24T15:00", True),
        ("can I come in tomorrow at half past two", "2026-11-22T14:30", True),
        ("friday morning", "2026-11-27T09:00", True),
        ("how about monday at 10 am", "2026-11-23T10:00", True),
        ("on the third of December", "2026-12-03T00:00", False),
        ("next tuesday at 9", "2026-11-24T09:00", True),
    ],
)
def test_dates_and_times(extract, text, value, has_time):
    found = extract(text)["datetime"]
    assert found["value"] == value
    assert found["has_time"] is has_time
    assert found["spoken"]


def test_spoken_form_for_the_dialogue(extract):
    assert extract("next Tuesday at three")["datetime"]["spoken"] == "Tuesday, November 24 at 3 PM"


@pytest.mark.parametrize("text", ["may I book an appointment", "I need to see the dentist", "yes"])
def test_no_false_dates(extract, text):
    assert "datetime" not in extract(text)


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("four seven two nine", "4729"),
        ("my member number is 4 7 2 9", "4729"),
        ("four oh seven", "407"),
        ("it's double five three one", "5531"),
        ("123456", "123456"),
    ],
)
def test_digit_strings(extract, text, digits):
    assert extract(text)["digits"] == digits


@pytest.mark.parametrize("text", ["I have two kids", "at 3", "one appointment please"])
def test_small_numbers_are_not_digit_strings(extract, text):
    assert "digits" not in extract(text)


def test_phone_number_spoken(extract):
    phone = extract("you can call me on two zero two five five five zero one two three")["phone"]
    assert phone["value"] == "+12025550123"


def test_phone_number_with_country_code(extract):
    assert extract("+44 20 7946 0958")["phone"]["value"] == "+442079460958"


def test_invalid_phone_number_is_not_a_phone(extract):
    assert "phone" not in extract("my number is 1 2 3 4 5 6 7")


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("it costs twenty five dollars and fifty cents", 25.5, "USD"),
        ("$40 please", 40.0, "USD"),
        ("ninety five euros", 95.0, "EUR"),
        ("about a hundred and forty bucks", 140.0, "USD"),
        ("£12.50", 12.5, "GBP"),
    ],
)
def test_money(extract, text, amount, currency):
    money = extract(text)["money"]
    assert (money["value"], money["currency"]) == (amount, currency)


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("yes please", "yes"),
        ("Yeah, that's right", "yes"),
        ("um, sure", "yes"),
        ("Sounds good.", "yes"),
        ("That works for me", "yes"),
        ("Mm hmm, you got it", "yes"),
        ("no thanks", "no"),
        ("nope", "no"),
        ("not really", "no"),
    ],
)
def test_yes_no(extract, text, answer):
    assert extract(text)["yes_no"] == answer


def test_no_yes_no_in_a_question(extract):
    assert "yes_no" not in extract("when are you open")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "日本語のテキストです",
        "¿Dónde está la clínica?",
        "asdkjh qweoiu zzz",
        "9" * 5000,
        "$" * 300,
        "\x00\x01 weird",
        "at at at 99:99 on the 45th",
    ],
)
def test_odd_input_never_raises(extract, text):
    assert isinstance(extract(text), dict)


def test_normalise_turns_number_words_into_digits():
    assert normalise("Four Seven Two Nine") == "4 7 2 9"


def test_keyed_digits():
    assert EntityExtractor([]).digits("0815") == {"digits": "0815"}
