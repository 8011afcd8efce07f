"""Calling windows in the callee's local time: DST, holidays, zones from the number."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from integrations.outbound.windows import (
    CallingWindows,
    WindowError,
    parse_window_flag,
    zones_for_number,
)

NY = "America/New_York"
CLINIC = {"mon-fri": ["09:00-12:00", "13:00-19:00"], "sat": ["10:00-14:00"]}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_open_by_weekday_in_local_time() -> None:
    windows = CallingWindows.parse(CLINIC)
    assert windows.is_open(utc(2026, 1, 14, 14, 0), NY)  # Wed 09:00 EST
    assert not windows.is_open(utc(2026, 1, 14, 13, 59), NY)  # 08:59
    assert not windows.is_open(utc(2026, 1, 14, 17, 30), NY)  # lunch 12:30
    assert not windows.is_open(utc(2026, 1, 15, 0, 0), NY)  # 19:00: the end is excluded
    assert windows.is_open(utc(2026, 1, 17, 15, 0), NY)  # Sat 10:00
    assert not windows.is_open(utc(2026, 1, 18, 16, 0), NY)  # Sunday
    # the same instant is closed for a callee in Los Angeles (06:00)
    assert not windows.is_open(utc(2026, 1, 14, 14, 0), "America/Los_Angeles")


def test_next_open_is_now_when_open_else_the_next_opening_in_utc() -> None:
    windows = CallingWindows.parse(CLINIC)
    now = utc(2026, 1, 14, 14, 30)
    assert windows.next_open(now, NY) == now
    assert windows.next_open(utc(2026, 1, 14, 17, 30), NY) == utc(2026, 1, 14, 18, 0)  # 13:00
    # Saturday after closing -> Monday 09:00 EST
    assert windows.next_open(utc(2026, 1, 17, 20, 0), NY) == utc(2026, 1, 19, 14, 0)
    # naive times are UTC (how records store them)
    assert windows.next_open(datetime(2026, 1, 17, 20, 0), NY) == utc(2026, 1, 19, 14, 0)


def test_daylight_saving_time_moves_the_window_in_utc() -> None:
    windows = CallingWindows.parse({"mon-sun": ["09:00-19:00"]})
    # US clocks spring forward on Sunday 8 March 2026: 09:00 is 14:00 UTC before, 13:00 after
    assert windows.next_open(utc(2026, 3, 7, 2, 0), NY) == utc(2026, 3, 7, 14, 0)
    assert windows.next_open(utc(2026, 3, 8, 2, 0), NY) == utc(2026, 3, 8, 13, 0)
    assert windows.is_open(utc(2026, 3, 8, 13, 30), NY)
    assert not windows.is_open(utc(2026, 3, 7, 13, 30), NY)
    # and back on Sunday 1 November: 19:00 EST is 00:00 UTC
    assert windows.is_open(utc(2026, 11, 1, 23, 30), NY)
    assert not windows.is_open(utc(2026, 11, 1, 0, 30), NY)  # Sat 31 Oct 20:30 EDT


def test_a_window_starting_in_the_spring_forward_gap_opens_after_it() -> None:
    windows = CallingWindows.parse({"sun": ["02:30-04:00"]})
    opening = windows.next_open(utc(2026, 3, 8, 0, 0), NY)  # 02:30 does not exist that day
    assert opening == utc(2026, 3, 8, 7, 30)  # 03:30 EDT
    assert opening is not None
    assert windows.is_open(opening, NY)


def test_public_holidays_are_skipped_in_the_callee_country() -> None:
    windows = CallingWindows.parse({"mon-fri": ["09:00-19:00"]}, "US")
    # Friday 25 December 2026 is Christmas Day: Monday 28th 09:00 EST
    assert not windows.is_open(utc(2026, 12, 25, 15, 0), NY)
    assert windows.next_open(utc(2026, 12, 25, 0, 30), NY) == utc(2026, 12, 28, 14, 0)
    # Cesar Chavez Day (31 March) is a holiday in California only
    california = CallingWindows.parse({"mon-fri": ["09:00-19:00"]}, "US", "CA")
    march_31 = utc(2026, 3, 31, 17, 0)  # Tuesday, 10:00 in Los Angeles
    assert not california.is_open(march_31, "America/Los_Angeles")
    assert windows.is_open(march_31, "America/Los_Angeles")
    with pytest.raises(WindowError, match="holidays"):
        CallingWindows.parse({"mon": ["09:00-10:00"]}, "XX")


def test_zones_derived_from_the_number() -> None:
    assert zones_for_number("+12125550123", "UTC") == NY
    assert zones_for_number("+33142685300", "UTC") == "Europe/Paris"
    assert zones_for_number("+18005550123", "Europe/London") == "Europe/London"  # toll-free
    several = zones_for_number("+12085550123", "UTC")  # Idaho: Boise and Los Angeles
    assert several == "America/Boise|America/Los_Angeles"


def test_several_zones_call_only_while_open_in_all() -> None:
    windows = CallingWindows.parse({"mon-fri": ["09:00-19:00"]})
    zones = "America/Boise|America/Los_Angeles"  # UTC-7 and UTC-8 in January
    assert not windows.is_open(utc(2026, 1, 14, 16, 30), zones)  # 09:30 Boise, 08:30 LA
    assert windows.next_open(utc(2026, 1, 14, 16, 30), zones) == utc(2026, 1, 14, 17, 0)
    assert not windows.is_open(utc(2026, 1, 15, 2, 30), zones)  # 19:30 Boise
    # windows that never overlap: no opening
    apart = CallingWindows.parse({"mon-sun": ["09:00-10:00"]})
    assert apart.next_open(utc(2026, 1, 14), "Asia/Tokyo|America/New_York") is None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("mon-fri", "give days and spans"),
        ("fri-mon 09:00-10:00", "runs forward"),
        ("mon 9-17", "HH:MM-HH:MM"),
        ("mon 18:00-09:00", "ends before"),
        ("funday 09:00-10:00", "mon..sun"),
        ("mon 25:00-26:00", "not a time"),
    ],
)
def test_bad_windows_say_what_is_wrong(text: str, error: str) -> None:
    with pytest.raises(WindowError, match=error):
        parse_window_flag(text)


def test_window_flag() -> None:
    assert parse_window_flag("mon-fri 09:00-12:00,13:00-24:00") == (
        "mon-fri",
        ["09:00-12:00", "13:00-24:00"],
    )
