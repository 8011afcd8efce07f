"""Calling windows: when a campaign may ring a callee, in the callee's own local time.

Windows are given per weekday (``{"mon-fri": ["09:00-12:00", "13:00-19:00"], "sat":
["10:00-14:00"]}``) as local wall-clock times, so they follow daylight saving time (the
zone rules of :mod:`zoneinfo`). Public holidays of one country (and optionally one
subdivision, e.g. ``US`` / ``CA``) are skipped whole, in the callee's local date
(the ``holidays`` package).

A callee's time zone comes from their row, else from their number
(:func:`zones_for_number`). A number that ``phonenumbers`` places in several zones keeps
them all (``"America/New_York|America/Chicago"``) and is called only while the window is
open in every one of them (the most restrictive reading). A number it cannot place (or
one it places in so many zones that they do not fit a contact row, e.g. a toll-free
number) gets the campaign's default zone.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import phonenumbers
from phonenumbers import timezone as phone_timezones

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ZONE_SEPARATOR = "|"
ZONE_COLUMN_CHARS = 64
"""The contact row's time-zone column holds this many characters."""
SEARCH_DAYS = 400
"""How far ahead :meth:`CallingWindows.next_open` looks before giving up."""
END_OF_DAY = time(23, 59, 59, 999999)
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


class WindowError(ValueError):
    """A calling window, day or time zone that cannot be understood (the message says which)."""


def _clock(hours: str, minutes: str, text: str) -> time:
    h, m = int(hours), int(minutes)
    if h == 24 and m == 0:
        return END_OF_DAY
    if h > 23 or m > 59:
        raise WindowError(f"{text!r}: not a time of day (HH:MM, 00:00 to 24:00)")
    return time(h, m)


def parse_span(text: str) -> tuple[time, time]:
    """``"09:00-19:00"`` -> (09:00, 19:00); the end is excluded, ``24:00`` is midnight."""
    match = _SPAN.match(text.strip())
    if match is None:
        raise WindowError(f"{text!r}: give a span as HH:MM-HH:MM (e.g. 09:00-19:00)")
    start = _clock(match[1], match[2], text)
    end = _clock(match[3], match[4], text)
    if end <= start:
        raise WindowError(f"{text!r}: the span ends before it starts")
    return start, end


def parse_days(text: str) -> list[int]:
    """``"mon-fri"``, ``"sat"``, ``"mon,wed"`` -> weekday numbers (Monday 0)."""
    found: list[int] = []
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise WindowError(f"{text!r}: days are mon..sun, a range (mon-fri) or a list")
        a, b = DAYS.index(first), DAYS.index(last or first)
        if b < a:
            raise WindowError(f"{text!r}: a day range runs forward (e.g. mon-fri)")
        found.extend(range(a, b + 1))
    return found


def parse_window_flag(text: str) -> tuple[str, list[str]]:
    """``"mon-fri 09:00-12:00,13:00-19:00"`` -> ("mon-fri", ["09:00-12:00", "13:00-19:00"])."""
    days, _, spans = text.strip().partition(" ")
    if not spans.strip():
        raise WindowError(f"{text!r}: give days and spans, e.g. 'mon-fri 09:00-19:00'")
    parse_days(days)
    listed = [s for s in re.split(r"[,\s]+", spans.strip()) if s]
    for span in listed:
        parse_span(span)
    return days, listed


def check_zone(name: str) -> ZoneInfo:
    """The zone called ``name``.

    Raises:
        WindowError: No such IANA time zone.
    """
    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise WindowError(f"unknown time zone {name!r} (an IANA name, e.g. Europe/Paris)") from None


@cache
def _zone(name: str) -> ZoneInfo:
    if not name or name != name.strip():
        raise ValueError(name)
    return ZoneInfo(name)


def zones_for_number(phone: str, default: str) -> str:
    """The time zone(s) of an E.164 number, ``|``-joined, or ``default`` when unknown."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return default
    names = [z for z in phone_timezones.time_zones_for_number(number) if not z.startswith("Etc/")]
    joined = ZONE_SEPARATOR.join(dict.fromkeys(names))
    if not names or len(joined) > ZONE_COLUMN_CHARS:
        return default
    return joined


def zone_names(tz: str) -> list[str]:
    """The zones of a contact's time-zone field (one, or several ``|``-joined)."""
    return [z for z in tz.split(ZONE_SEPARATOR) if z]


@dataclass(frozen=True)
class CallingWindows:
    """When calls may be placed, per weekday in the callee's local time.

    Parameters:
        spans: Weekday (Monday 0) -> local ``(start, end)`` times, end excluded.
        holidays_country: ISO country whose public holidays are skipped ("" none).
        holidays_subdivision: Its subdivision (state, province), "" for national only.
    """

    spans: Mapping[int, tuple[tuple[time, time], ...]]
    holidays_country: str = ""
    holidays_subdivision: str = ""
    _holidays: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(
        cls, spec: Mapping[str, Sequence[str]], country: str = "", subdivision: str = ""
    ) -> CallingWindows:
        """From ``{"mon-fri": ["09:00-19:00"], "sat": ["10:00-14:00"]}``.

        Raises:
            WindowError: A day, span or holiday country that cannot be understood.
        """
        spans: dict[int, list[tuple[time, time]]] = {}
        for days, listed in spec.items():
            if isinstance(listed, str):
                listed = [listed]
            for day in parse_days(days):
                spans.setdefault(day, []).extend(parse_span(s) for s in listed)
        if not any(spans.values()):
            raise WindowError("no calling window: give at least one, e.g. 'mon-fri 09:00-19:00'")
        windows = cls(
            {d: tuple(sorted(s)) for d, s in spans.items()},
            country.upper(),
            subdivision.upper() if country else "",
        )
        windows.holiday_calendar()  # an unknown country fails here, not at the first dial
        return windows

    def holiday_calendar(self) -> Any:
        """The ``holidays`` calendar (None without a country)."""
        if not self.holidays_country:
            return None
        if "calendar" not in self._holidays:
            try:
                self._holidays["calendar"] = holidays.country_holidays(
                    self.holidays_country, subdiv=self.holidays_subdivision or None
                )
            except NotImplementedError:
                where = self.holidays_country + (
                    f"/{self.holidays_subdivision}" if self.holidays_subdivision else ""
                )
                raise WindowError(
                    f"holidays: no public-holiday calendar for {where!r} "
                    "(an ISO country code such as US, GB, FR; subdivision e.g. US/CA)"
                ) from None
        return self._holidays["calendar"]

    def is_holiday(self, day: date) -> bool:
        """Whether ``day`` (a local date) is a public holiday skipped whole."""
        calendar = self.holiday_calendar()
        return calendar is not None and day in calendar

    def is_open(self, utc_now: datetime, tz: str) -> bool:
        """Whether a callee in ``tz`` (one zone or several ``|``-joined) may be rung now."""
        return all(self._open_in(_aware(utc_now), _zone(z)) for z in zone_names(tz))

    def next_open(self, utc_now: datetime, tz: str) -> datetime | None:
        """The first moment from ``utc_now`` on when :meth:`is_open` (aware UTC).

        ``utc_now`` itself when open. None when no window opens in the next
        :data:`SEARCH_DAYS` days (windows that never overlap across the zones).
        """
        now = _aware(utc_now)
        if self.is_open(now, tz):
            return now
        zones = [_zone(z) for z in zone_names(tz)]
        # an intersection of windows opens where one of them opens: try each opening in order
        for candidate in self._openings(now, zones):
            if all(self._open_in(candidate, z) for z in zones):
                return candidate
        return None

    def _open_in(self, now: datetime, zone: ZoneInfo) -> bool:
        local = now.astimezone(zone)
        if self.is_holiday(local.date()):
            return False
        clock = local.time().replace(tzinfo=None)
        return any(start <= clock < end for start, end in self.spans.get(local.weekday(), ()))

    def _openings(self, now: datetime, zones: Sequence[ZoneInfo]) -> Iterator[datetime]:
        """Every window start after ``now`` in any of ``zones``, in time order (lazily)."""
        return heapq.merge(*(self._zone_openings(now, zone) for zone in zones))

    def _zone_openings(self, now: datetime, zone: ZoneInfo) -> Iterator[datetime]:
        first = now.astimezone(zone).date()
        for offset in range(SEARCH_DAYS + 1):
            day = first + timedelta(days=offset)
            if self.is_holiday(day):
                continue
            for start, _end in self.spans.get(day.weekday(), ()):
                # a start inside a spring-forward gap resolves to the instant after it
                at = datetime.combine(day, start, tzinfo=zone).astimezone(UTC)
                if at > now:
                    yield at


def _aware(moment: datetime) -> datetime:
    """A UTC-aware datetime (naive ones are UTC, as call records store them)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
