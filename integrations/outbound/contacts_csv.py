"""Campaign contacts from a CSV file or a list of rows: the good ones in, each bad one named.

Columns: ``phone`` (required), ``timezone`` (optional, an IANA name), every other column
is a per-contact variable (``first_name``, ``appointment``...) the agent's script may use.
A row is refused, named by its line and reason, when its number is not a phone number,
its time zone is unknown, a variable the agent's script needs is missing or empty, its
number already appeared earlier in the file, or its number is on the do-not-call list
(refused and reported, not imported: it is never dialled; the list is checked again
before each dial). Problems name the line, never the number or the values.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from integrations.crm.base import normalize_phone
from integrations.outbound.windows import WindowError, check_zone, zones_for_number

MAX_ROWS = 100_000
MAX_VALUE_CHARS = 500
MAX_VARIABLES = 50
RESERVED = ("phone", "timezone")


@dataclass(frozen=True)
class ContactRow:
    """One contact to call.

    Parameters:
        line: Where it came from (the CSV line, or the row's position from 1 for the API).
        phone: E.164.
        timezone: Its zone(s) (see :mod:`integrations.outbound.windows`).
        variables: Its per-contact variables.
    """

    line: int
    phone: str
    timezone: str
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """A row that was not imported, and why (no personal data)."""

    line: int
    reason: str

    def as_json(self) -> dict[str, int | str]:
        """For the API."""
        return {"line": self.line, "reason": self.reason}


class ContactsError(ValueError):
    """The file as a whole cannot be read (no ``phone`` column, too many rows, not CSV)."""


def parse_contacts_csv(
    text: str,
    *,
    required: Sequence[str],
    default_timezone: str,
    on_dnc: Callable[[str], bool] = lambda _phone: False,
) -> tuple[list[ContactRow], list[Problem]]:
    """Read CSV text (a header line, then a contact per line).

    Args:
        text: The file's text.
        required: The variables the agent's script uses (every row must give them).
        default_timezone: For rows whose time zone neither the row nor the number gives.
        on_dnc: Whether an E.164 number is on the do-not-call list.

    Returns:
        (the rows imported, a problem per row refused).

    Raises:
        ContactsError: No header with a ``phone`` column, a malformed file, too many rows.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader, None)
        if header is None or "phone" not in [h.strip().lower() for h in header]:
            raise ContactsError("the first line must name the columns, one of them 'phone'")
        names = [h.strip() for h in header]
        rows: list[tuple[int, dict[str, str]]] = []
        line = reader.line_num
        for values in reader:
            start, line = line + 1, reader.line_num
            if not any(v.strip() for v in values):
                continue  # blank lines are not contacts
            if len(rows) >= MAX_ROWS:
                raise ContactsError(f"more than {MAX_ROWS} contacts: split the file")
            if len(values) > len(names):
                rows.append((start, {"\0extra": "1"}))
                continue
            rows.append((start, dict(zip(names, values, strict=False))))
    except csv.Error as e:
        raise ContactsError(f"line {reader.line_num}: not valid CSV ({e})") from None
    return check_rows(rows, required=required, default_timezone=default_timezone, on_dnc=on_dnc)


def check_rows(
    rows: Iterable[tuple[int, Mapping[str, object]]],
    *,
    required: Sequence[str],
    default_timezone: str,
    on_dnc: Callable[[str], bool] = lambda _phone: False,
) -> tuple[list[ContactRow], list[Problem]]:
    """Check (line, row) pairs as :func:`parse_contacts_csv` does (the API's JSON rows)."""
    good: list[ContactRow] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for line, raw in rows:
        row, reason = _row(line, raw, required, default_timezone)
        if row is None:
            problems.append(Problem(line, reason))
        elif row.phone in seen:
            problems.append(Problem(line, f"duplicate number (first on line {seen[row.phone]})"))
        elif on_dnc(row.phone):
            seen[row.phone] = line
            problems.append(Problem(line, "number on the do-not-call list (not imported)"))
        else:
            seen[row.phone] = line
            good.append(row)
    return good, problems


def _row(
    line: int, raw: Mapping[str, object], required: Sequence[str], default_timezone: str
) -> tuple[ContactRow | None, str]:
    if "\0extra" in raw:
        return None, "more values than there are columns"
    lowered = {str(k).strip().lower(): k for k in raw}
    values: dict[str, str] = {}
    for key, value in raw.items():
        if value is None:
            continue
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            return None, f"'{key}' must be text"
        values[str(key).strip()] = str(value).strip()
    phone_text = values.get(str(lowered.get("phone", "phone")).strip(), "")
    if not phone_text:
        return None, "no phone number"
    phone = normalize_phone(phone_text)
    if phone is None:
        return None, "invalid phone number"
    zone_text = values.get(str(lowered.get("timezone", "timezone")).strip(), "")
    if zone_text:
        try:
            check_zone(zone_text)
        except WindowError:
            return None, "unknown time zone (an IANA name, e.g. America/Chicago)"
        zone = zone_text
    else:
        zone = zones_for_number(phone, default_timezone)
    variables = {k: v for k, v in values.items() if k.lower() not in RESERVED}
    missing = [name for name in required if not variables.get(name)]
    if missing:
        return None, f"missing variable {', '.join(repr(m) for m in missing)} (the script uses it)"
    if len(variables) > MAX_VARIABLES:
        return None, f"more than {MAX_VARIABLES} variables"
    too_long = [k for k, v in variables.items() if len(v) > MAX_VALUE_CHARS or len(k) > 100]
    if too_long:
        return None, f"'{too_long[0][:100]}' is longer than {MAX_VALUE_CHARS} characters"
    return ContactRow(line, phone, zone, variables), ""
