"""Campaign contacts from CSV: good rows imported, each bad one named by line and reason."""

from __future__ import annotations

import pytest

from integrations.outbound.contacts_csv import ContactsError, check_rows, parse_contacts_csv

CSV = """phone,timezone,first_name,appointment
+12125550101,,Maria,Friday 10 am
(212) 555-0102,America/Chicago,Omar,Monday 9 am
not a number,,Ann,Tuesday
+12125550104,Mars/Olympus,Bob,Tuesday
+12125550105,,,Tuesday

+12125550101,,Maria again,Friday
+12125550107,,Dnc,Friday
"""


def test_good_rows_imported_bad_ones_named_by_line() -> None:
    rows, problems = parse_contacts_csv(
        CSV,
        required=("first_name", "appointment"),
        default_timezone="UTC",
        on_dnc=lambda phone: phone == "+12125550107",
    )
    assert [(r.line, r.phone, r.timezone) for r in rows] == [
        (2, "+12125550101", "America/New_York"),  # derived from the number
        (3, "+12125550102", "America/Chicago"),  # the row's own
    ]
    assert rows[0].variables == {"first_name": "Maria", "appointment": "Friday 10 am"}
    reasons = {p.line: p.reason for p in problems}
    assert reasons[4] == "invalid phone number"
    assert reasons[5].startswith("unknown time zone")
    assert reasons[6] == "missing variable 'first_name' (the script uses it)"
    assert reasons[8] == "duplicate number (first on line 2)"
    assert reasons[9] == "number on the do-not-call list (not imported)"
    assert len(problems) == 5
    assert all("555" not in p.reason for p in problems)  # no number in a problem


def test_quoted_multiline_values_keep_line_numbers_and_extra_values_are_refused() -> None:
    text = 'phone,note\n+12125550101,"two\nlines"\n+12125550102,a,b\n+12125550103,ok\n'
    rows, problems = parse_contacts_csv(text, required=(), default_timezone="UTC")
    assert [r.line for r in rows] == [2, 5]
    assert [(p.line, p.reason) for p in problems] == [(4, "more values than there are columns")]


def test_a_file_without_a_phone_column_is_refused_whole() -> None:
    with pytest.raises(ContactsError, match="phone"):
        parse_contacts_csv("number,name\n1,2\n", required=(), default_timezone="UTC")


def test_rows_from_the_api_are_numbered_from_one() -> None:
    rows, problems = check_rows(
        enumerate([{"phone": "+12125550101", "n": 1}, {"phone": "x"}, {"name": "y"}], start=1),
        required=(),
        default_timezone="UTC",
    )
    assert rows[0].variables == {"n": "1"}
    assert [(p.line, p.reason) for p in problems] == [
        (2, "invalid phone number"),
        (3, "no phone number"),
    ]
