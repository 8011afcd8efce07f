"""Demo customers of the reference agent (Brightside Dental), seeded into the embedded CRM.

Dates are relative to today so the demo always has upcoming appointments. The numbers are
in the 555-01xx range reserved for fiction. ``+15555550123`` is the phone emulator's default
caller and ``+15555550142`` the end-to-end tests' caller.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

DEMO_CUSTOMERS: tuple[dict[str, str], ...] = (
    {
        "id": "cus_1001",
        "first_name": "Maria",
        "last_name": "Garcia",
        "phone": "+15555550123",
        "email": "maria.garcia@example.com",
        "date_of_birth": "1985-03-04",
        "pin": "4729",
        "account_status": "active",
    },
    {
        "id": "cus_1002",
        "first_name": "James",
        "last_name": "Okafor",
        "phone": "+15555550142",
        "email": "j.okafor@example.com",
        "date_of_birth": "1979-11-19",
        "pin": "1234",
        "account_status": "active",
    },
    {
        "id": "cus_1003",
        "first_name": "Priya",
        "last_name": "Raman",
        "phone": "+15555550171",
        "email": "priya.raman@example.com",
        "date_of_birth": "1992-07-28",
        "pin": "8080",
        "account_status": "overdue",
    },
    {
        "id": "cus_1004",
        "first_name": "Tom",
        "last_name": "Becker",
        "phone": "+15555550188",
        "email": "tbecker@example.com",
        "date_of_birth": "1964-01-09",
        "pin": "5511",
        "account_status": "active",
    },
    {
        "id": "cus_1005",
        "first_name": "Aisha",
        "last_name": "Mensah",
        "phone": "+15555550109",
        "email": "aisha.m@example.com",
        "date_of_birth": "2001-05-15",
        "pin": "2468",
        "account_status": "new_patient",
    },
    {
        "id": "cus_1006",
        "first_name": "Daniel",
        "last_name": "Kim",
        "phone": "+15555550156",
        "email": "dkim@example.com",
        "date_of_birth": "1988-09-02",
        "pin": "9001",
        "account_status": "inactive",
    },
)


def seed_rows(now: datetime | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Every demo row as ``(table, row)``, dated relative to ``now``."""
    now = (now or datetime.now()).replace(second=0, microsecond=0)

    def day(days: int, hour: int, minute: int = 0) -> str:
        at = (now + timedelta(days=days)).replace(hour=hour, minute=minute)
        return at.strftime("%Y-%m-%dT%H:%M")

    rows: list[tuple[str, dict[str, Any]]] = [("customers", dict(c)) for c in DEMO_CUSTOMERS]
    appointments = [
        ("apt_2001", "cus_1001", day(3, 15), "cleaning", "Dr. Patel"),
        ("apt_2002", "cus_1001", day(45, 9, 30), "checkup", "Dr. Patel"),
        ("apt_2003", "cus_1002", day(1, 10), "filling", "Dr. Nguyen"),
        ("apt_2004", "cus_1003", day(7, 11, 30), "crown fitting", "Dr. Nguyen"),
        ("apt_2005", "cus_1004", day(2, 8, 30), "checkup", "Dr. Patel"),
        ("apt_2006", "cus_1005", day(5, 14), "new patient exam", "Dr. Alvarez"),
    ]
    rows += [
        ("appointments", {"id": i, "customer_id": c, "starts_at": s, "kind": k, "provider": p})
        for i, c, s, k, p in appointments
    ]
    rows += [
        (
            "cases",
            {
                "id": "case_3001",
                "customer_id": "cus_1003",
                "subject": "Insurance claim for crown rejected",
                "opened_at": day(-6, 9),
            },
        ),
        (
            "cases",
            {
                "id": "case_3002",
                "customer_id": "cus_1004",
                "subject": "Sensitivity after filling",
                "opened_at": day(-2, 16),
            },
        ),
    ]
    rows += [
        (
            "interactions",
            {
                "customer_id": "cus_1001",
                "at": day(-20, 10),
                "channel": "visit",
                "summary": "Checkup, no issues",
                "outcome": "resolved",
            },
        ),
        (
            "interactions",
            {
                "customer_id": "cus_1001",
                "at": day(-4, 12),
                "channel": "call",
                "summary": "Booked a cleaning",
                "outcome": "resolved",
            },
        ),
        (
            "interactions",
            {
                "customer_id": "cus_1002",
                "at": day(-9, 17),
                "channel": "call",
                "summary": "Asked about filling costs",
                "outcome": "resolved",
            },
        ),
        (
            "interactions",
            {
                "customer_id": "cus_1003",
                "at": day(-6, 9),
                "channel": "email",
                "summary": "Disputed the crown invoice",
                "outcome": "case_opened",
            },
        ),
        (
            "interactions",
            {
                "customer_id": "cus_1004",
                "at": day(-2, 16),
                "channel": "call",
                "summary": "Reported sensitivity",
                "outcome": "case_opened",
            },
        ),
    ]
    rows += [
        (
            "pending_actions",
            {
                "id": "act_4001",
                "customer_id": "cus_1003",
                "kind": "callback",
                "note": "Billing to call back about the crown claim",
                "due": day(1, 12),
            },
        ),
        (
            "pending_actions",
            {
                "id": "act_4002",
                "customer_id": "cus_1005",
                "kind": "send_forms",
                "note": "New patient forms not yet returned",
                "due": day(4, 9),
            },
        ),
    ]
    return rows
