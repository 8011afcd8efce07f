"""Entities in a caller's words: dates and times, digit strings, money, phone numbers, yes/no.

Number words are turned into digits by ``text2num`` ("four seven two nine" ->
"4 7 2 9", "twenty five dollars" -> "25 dollars"), dates and times are read by
``dateparser`` and phone numbers by ``phonenumbers``. Each entity kind is an
:class:`EntityParser`; :class:`EntityExtractor` runs a list of them.

Entity values (keys of the result):

- ``datetime``: ``{"text": span, "value": ISO 8601, "spoken": "Tuesday, November 24 at 3 PM",
  "has_time": bool}``
- ``digits``: the digit string, e.g. ``"4729"`` (spoken or keyed)
- ``phone``: ``{"text": digits, "value": E.164, "spoken": digits}``
- ``money``: ``{"text": span, "value": 25.5, "currency": "USD", "spoken": "25.50 USD"}``
- ``yes_no``: ``"yes"`` or ``"no"``
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import phonenumbers
from dateparser.search import search_dates
from text_to_num import alpha2digit

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Utterance:
    """One utterance in the forms the parsers read.

    Parameters:
        text: As the caller said it.
        normalised: Lower case, number words as digits.
    """

    text: str
    normalised: str


class EntityParser(Protocol):
    """Finds one kind of entity."""

    kind: str

    def parse(self, utterance: Utterance) -> Any | None:
        """The entity's value, or None when the utterance has none."""
        ...


_HOUR_WORDS = {"noon": "12:00 pm", "midday": "12:00 pm", "midnight": "12:00 am"}
_DATE_CUES = re.compile(
    r"\b(mon|tue|wed|thu|fri|sat|sun)[a-z]*\b|\b(jan|feb|mar|apr|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b"
    r"|\bmay\b|\b(today|tonight|tomorrow|yesterday|now|next|this|morning|afternoon|evening"
    r"|noon|week|month|weekend|am|pm|o'clock)\b|\d:\d\d|\b\d+(st|nd|rd|th)\b|\bin \d+ (day|week)",
)
_MAY_MODAL = re.compile(r"\bmay (i|we|you|he|she|they|be)\b")


def _spoken_time(moment: datetime) -> str:
    hour = moment.hour % 12 or 12
    suffix = "AM" if moment.hour < 12 else "PM"
    return f"{hour} {suffix}" if moment.minute == 0 else f"{hour}:{moment.minute:02d} {suffix}"


@dataclass
class DateTimeParser:
    """Dates and times ("next Tuesday at three", "tomorrow at half past two").

    A bare hour ("at 3") is read as a business hour: 1 to 6 mean the afternoon,
    7 to 12 the morning (override with "am"/"pm").

    Parameters:
        clock: "Now" for relative dates (tests pin it).
        earliest_business_hour: Bare hours below this are read as PM.
    """

    clock: Clock = datetime.now
    earliest_business_hour: int = 7
    kind: str = "datetime"

    def parse(self, utterance: Utterance) -> dict[str, Any] | None:
        """The first date or time mentioned, if any."""
        text = self._prepare(utterance.normalised)
        if not _DATE_CUES.search(text):
            return None
        try:
            found = search_dates(
                text,
                languages=["en"],
                settings={"PREFER_DATES_FROM": "future", "RELATIVE_BASE": self.clock()},
            )
        except Exception:  # noqa: BLE001 - dateparser raises assorted errors on odd input
            return None
        for span, moment in found or []:
            if not _DATE_CUES.search(span) or (span.strip() == "may" and _MAY_MODAL.search(text)):
                continue
            has_time = bool(re.search(r"\d:\d\d|\b(am|pm|morning|afternoon|evening)\b", span))
            spoken = moment.strftime("%A, %B ") + str(moment.day)
            if has_time:
                spoken += " at " + _spoken_time(moment)
            return {
                "text": span,
                "value": moment.isoformat(timespec="minutes"),
                "spoken": spoken,
                "has_time": has_time,
            }
        return None

    def _prepare(self, text: str) -> str:
        for word, value in _HOUR_WORDS.items():
            text = re.sub(rf"\b{word}\b", value, text)
        text = re.sub(r"\bhalf past (\d{1,2})\b", r"\1:30", text)
        text = re.sub(r"\bquarter past (\d{1,2})\b", r"\1:15", text)
        text = re.sub(r"\b(\d{1,2}) o'?clock\b", r"\1:00", text)
        text = re.sub(r"\b(\d{1,2}) (\d{2})\b(?= ?(am|pm))", r"\1:\2", text)  # "3 30 pm"
        return re.sub(r"\bat (\d{1,2})(:\d\d)?\b(?! ?(am|pm|:))", self._bare_hour, text)

    def _bare_hour(self, match: re.Match[str]) -> str:
        hour = int(match.group(1))
        if hour > 12:
            return match.group(0)
        minutes = match.group(2) or ":00"
        suffix = "pm" if hour < self.earliest_business_hour or hour == 12 else "am"
        return f"at {hour}{minutes} {suffix}"


_DIGIT_RUN = re.compile(r"\d+(?:[ \-.,]+\d+)*")


@dataclass
class DigitStringParser:
    """Digit strings, spoken ("four seven two nine", "four oh seven") or keyed.

    Parameters:
        min_length: Shortest digit string reported (shorter numbers are quantities).
    """

    min_length: int = 3
    kind: str = "digits"

    def parse(self, utterance: Utterance) -> str | None:
        """The longest digit string, if any."""
        text = re.sub(r"(?<=\d) (oh|o)\b(?= \d|$)", " 0", utterance.normalised)
        text = re.sub(r"\b(oh|o) (?=\d)", "0 ", text)
        text = re.sub(r"\bdouble (\d)\b", r"\1 \1", text)
        text = re.sub(r"\btriple (\d)\b", r"\1 \1 \1", text)
        text = re.sub(r"[$€£]\s?\d+(?:[.,]\d+)?", " ", text)  # amounts are not digit strings
        best = ""
        for run in _DIGIT_RUN.findall(text):
            if re.fullmatch(r"\d{1,2}:\d\d", run):
                continue
            digits = re.sub(r"\D", "", run)
            if len(digits) > len(best):
                best = digits
        return best if len(best) >= self.min_length else None


@dataclass
class PhoneNumberParser:
    """Phone numbers, spoken digit by digit or keyed, read with ``phonenumbers``.

    Parameters:
        region: Region for numbers without a country code (ISO 3166, e.g. "US").
    """

    region: str = "US"
    kind: str = "phone"

    def parse(self, utterance: Utterance) -> dict[str, str] | None:
        """The phone number, if a digit string in the utterance is a valid one."""
        digits = DigitStringParser(min_length=7).parse(utterance)
        if digits is None:
            return None
        plus = "+" if re.search(r"\+\s?\d", utterance.text) else ""
        try:
            number = phonenumbers.parse(plus + digits, self.region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(number):
            return None
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return {"text": digits, "value": e164, "spoken": " ".join(digits)}


_CURRENCIES = {
    "$": "USD",
    "dollar": "USD",
    "dollars": "USD",
    "buck": "USD",
    "bucks": "USD",
    "usd": "USD",
    "€": "EUR",
    "euro": "EUR",
    "euros": "EUR",
    "eur": "EUR",
    "£": "GBP",
    "pound": "GBP",
    "pounds": "GBP",
    "quid": "GBP",
    "gbp": "GBP",
}
_MONEY = re.compile(
    r"(?P<sym>[$€£])\s?(?P<a>\d+(?:[.,]\d+)?)"
    r"|(?P<b>\d+(?:[.,]\d+)?)\s?(?P<word>dollars?|bucks?|usd|euros?|eur|pounds?|quid|gbp)\b"
    r"(?:\s*(?:and\s*)?(?P<cents>\d{1,2})\s*(?:cents?|pence|p)\b)?"
    r"|(?P<c>\d{1,2})\s*(?P<cw>cents)\b"
)


@dataclass
class MoneyParser:
    """Amounts of money ("twenty five dollars and fifty cents", "$40", "ninety euros")."""

    kind: str = "money"

    def parse(self, utterance: Utterance) -> dict[str, Any] | None:
        """The first amount mentioned, if any."""
        match = _MONEY.search(utterance.normalised)
        if match is None:
            return None
        if match.group("sym"):
            amount = float(match.group("a").replace(",", ""))
            currency = _CURRENCIES[match.group("sym")]
        elif match.group("word"):
            amount = float(match.group("b").replace(",", ""))
            if match.group("cents"):
                amount += int(match.group("cents")) / 100
            currency = _CURRENCIES[match.group("word")]
        else:
            amount = int(match.group("c")) / 100
            currency = "USD"
        return {
            "text": match.group(0),
            "value": round(amount, 2),
            "currency": currency,
            "spoken": f"{amount:.2f} {currency}",
        }


_YES = re.compile(
    r"^(yes|yeah|yep|yup|yea|sure|correct|right|exactly|absolutely|definitely|ok|okay|"
    r"that's right|that is right|that's correct|of course|please do|go ahead|affirmative|"
    r"uh huh|mhm|mm hmm|sounds? good|sounds? great|that works|works for me|you got it)\b"
)
_NO = re.compile(
    r"^(no|nope|nah|not really|negative|never mind|no thanks|no thank you|that's wrong|"
    r"that's not right|that is not right|not at all|don't|do not)\b"
)


@dataclass
class YesNoParser:
    """Whether the utterance opens with a yes or a no."""

    kind: str = "yes_no"

    def parse(self, utterance: Utterance) -> str | None:
        """``"yes"``, ``"no"`` or None."""
        text = re.sub(r"^(um+|uh+|well|oh|er+|hmm+)[, ]+", "", utterance.text.lower().strip())
        if _NO.match(text):
            return "no"
        if _YES.match(text):
            return "yes"
        return None


def default_parsers(clock: Clock = datetime.now, region: str = "US") -> list[EntityParser]:
    """Every parser, with the given clock and phone region."""
    return [
        DateTimeParser(clock=clock),
        DigitStringParser(),
        PhoneNumberParser(region=region),
        MoneyParser(),
        YesNoParser(),
    ]


MAX_CHARS = 500
"""Longer utterances are cut before parsing (keeps the time bounded)."""


class EntityExtractor:
    """Runs entity parsers over an utterance; never raises on odd input.

    One instance can be shared by every call of a process: extraction is
    serialised by a lock (dateparser's caches are not documented as thread-safe;
    an extraction takes about a millisecond).
    """

    def __init__(self, parsers: Sequence[EntityParser] | None = None):
        """Create the extractor (default: :func:`default_parsers`) and warm it up."""
        self._parsers = list(parsers) if parsers is not None else default_parsers()
        self._lock = threading.Lock()
        self.extract("next tuesday at three")  # dateparser loads its data on first use

    def extract(self, text: str) -> dict[str, Any]:
        """Entities by kind (only the kinds found)."""
        text = text.strip()[:MAX_CHARS]
        if not text:
            return {}
        utterance = Utterance(text, normalise(text))
        entities: dict[str, Any] = {}
        with self._lock:
            for parser in self._parsers:
                try:
                    value = parser.parse(utterance)
                except Exception:  # noqa: BLE001 - one parser's failure must not lose the turn
                    value = None
                if value is not None:
                    entities[parser.kind] = value
        return entities

    def digits(self, keyed: str) -> dict[str, Any]:
        """Entities of a keyed (DTMF) entry."""
        return {"digits": keyed}


def normalise(text: str) -> str:
    """Lower case with number words as digits ("four seven" -> "4 7")."""
    lowered = text.lower()
    try:
        return alpha2digit(lowered, "en", threshold=0)
    except Exception:  # noqa: BLE001 - text2num can reject odd input; fall back to the text
        return lowered
