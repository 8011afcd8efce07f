"""The CRM interface: what callagent knows about a caller, and what it may write back.

Every backend (embedded SQLite, a generic REST/webhook CRM, HubSpot) answers the same
:class:`CRM` interface with the same :class:`CallerRecord`. Records hold caller data
(names, numbers, dates of birth): never log them; log ``customer_id`` only.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import phonenumbers

DEFAULT_REGION = "US"
UPCOMING = frozenset({"booked", "confirmed"})
"""Appointment statuses that are still to come (``confirmed``: the patient said so)."""


class CRMError(Exception):
    """A CRM backend failed (network, auth, bad answer); the message holds no caller data."""


class AuthStatus(StrEnum):
    """Whether the caller proved who they are during this call."""

    UNVERIFIED = "unverified"
    VERIFIED = "verified"
    FAILED = "failed"


class AuthMethod(StrEnum):
    """How the caller was verified."""

    NONE = "none"
    PIN = "pin"
    DATE_OF_BIRTH = "date_of_birth"


@dataclass(frozen=True)
class Authentication:
    """The caller's authentication status in this call (part of the record passed on).

    Parameters:
        status: Unverified, verified or failed.
        method: How (PIN keyed or spoken, or date of birth).
        attempts: Verification attempts made.
    """

    status: AuthStatus = AuthStatus.UNVERIFIED
    method: AuthMethod = AuthMethod.NONE
    attempts: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"status": self.status.value, "method": self.method.value, "attempts": self.attempts}


@dataclass(frozen=True)
class Appointment:
    """A booked visit."""

    id: str
    starts_at: datetime
    kind: str = "appointment"
    provider: str = ""
    status: str = "booked"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "starts_at": self.starts_at.isoformat(),
            "kind": self.kind,
            "provider": self.provider,
            "status": self.status,
        }


@dataclass(frozen=True)
class Interaction:
    """A past contact with the customer (call, email, visit)."""

    at: datetime
    channel: str = "call"
    summary: str = ""
    outcome: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "at": self.at.isoformat(),
            "channel": self.channel,
            "summary": self.summary,
            "outcome": self.outcome,
        }


@dataclass(frozen=True)
class Case:
    """An open support case / ticket."""

    id: str
    subject: str
    status: str = "open"
    opened_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "subject": self.subject,
            "status": self.status,
            "opened_at": self.opened_at.isoformat() if self.opened_at else None,
        }


@dataclass(frozen=True)
class PendingAction:
    """Something the business owes the customer (a callback, a form to send...)."""

    id: str
    kind: str
    note: str = ""
    due: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "kind": self.kind,
            "note": self.note,
            "due": self.due.isoformat() if self.due else None,
        }


@dataclass(frozen=True)
class CallerRecord:
    """Everything the agent knows about a caller. Caller data: never log it.

    Parameters:
        customer_id: The backend's id (the only field logs may carry).
        first_name: Given name (the agent greets by it).
        last_name: Family name.
        phone: E.164 phone number.
        email: Email address.
        account_status: e.g. ``active``, ``overdue``, ``inactive``.
        appointments: Upcoming appointments, soonest first.
        interactions: Recent interactions, newest first.
        open_cases: Open cases / tickets.
        pending_actions: Things owed to the customer.
        auth: The caller's authentication status in this call.
        source: Which backend answered (``sqlite``, ``rest``, ``hubspot``).
        secrets: Verification values (``pin``, ``date_of_birth``). Never logged, never sent
            in summaries.
    """

    customer_id: str
    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    email: str = ""
    account_status: str = "active"
    appointments: tuple[Appointment, ...] = ()
    interactions: tuple[Interaction, ...] = ()
    open_cases: tuple[Case, ...] = ()
    pending_actions: tuple[PendingAction, ...] = ()
    auth: Authentication = Authentication()
    source: str = ""
    secrets: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        return f"CallerRecord(customer_id={self.customer_id!r}, source={self.source!r})"

    __str__ = __repr__

    @property
    def full_name(self) -> str:
        """First and last name."""
        return " ".join(p for p in (self.first_name, self.last_name) if p)

    def next_appointment(self, now: datetime | None = None) -> Appointment | None:
        """The soonest booked appointment that has not started yet."""
        now = _aware(now or datetime.now())
        upcoming = [
            a for a in self.appointments if a.status in UPCOMING and _aware(a.starts_at) >= now
        ]
        return min(upcoming, key=lambda a: _aware(a.starts_at)) if upcoming else None

    def with_auth(self, auth: Authentication) -> CallerRecord:
        """A copy with a new authentication status."""
        return replace(self, auth=auth)

    def summary(self, now: datetime | None = None) -> dict[str, Any]:
        """The record as handed to a human agent (no PIN, no date of birth)."""
        nxt = self.next_appointment(now)
        return {
            "customer_id": self.customer_id,
            "name": self.full_name,
            "phone": self.phone,
            "email": self.email,
            "account_status": self.account_status,
            "authentication": self.auth.as_dict(),
            "next_appointment": nxt.as_dict() if nxt else None,
            "recent_interactions": [i.as_dict() for i in self.interactions[:5]],
            "open_cases": [c.as_dict() for c in self.open_cases],
            "pending_actions": [p.as_dict() for p in self.pending_actions],
            "source": self.source,
        }


@dataclass(frozen=True)
class CallOutcome:
    """What happened on a call, written back to the CRM at hang-up.

    Parameters:
        call_id: callagent's call id.
        outcome: ``resolved``, ``transferred``, ``transfer_failed``, ``abandoned``...
        intents: The intents handled, in order.
        summary: One line for the CRM timeline (no transcript).
        started_at: When the call started.
        duration_s: Call length.
    """

    call_id: str
    outcome: str
    intents: tuple[str, ...] = ()
    summary: str = ""
    started_at: datetime | None = None
    duration_s: float = 0.0


class CRM(abc.ABC):
    """A customer database the agent reads at call start and writes back to."""

    name: str = "crm"

    @abc.abstractmethod
    async def lookup(self, identity: str) -> CallerRecord | None:
        """Find the caller by phone number (any format), customer id or email.

        Raises:
            CRMError: the backend failed (not found is ``None``).
        """

    @abc.abstractmethod
    async def log_call(self, customer_id: str, outcome: CallOutcome) -> None:
        """Add the call to the customer's interactions."""

    @abc.abstractmethod
    async def move_appointment(
        self, customer_id: str, appointment_id: str, starts_at: datetime
    ) -> None:
        """Move an appointment to a new time."""

    @abc.abstractmethod
    async def cancel_appointment(self, customer_id: str, appointment_id: str) -> None:
        """Cancel an appointment."""

    async def confirm_appointment(self, customer_id: str, appointment_id: str) -> None:
        """Mark an appointment as confirmed by the customer (e.g. on a reminder call).

        Raises:
            CRMError: this backend cannot record confirmations (the default).
        """
        raise CRMError(f"the {self.name} CRM cannot record appointment confirmations")

    @abc.abstractmethod
    async def add_pending_action(self, customer_id: str, kind: str, note: str = "") -> None:
        """Record something owed to the customer (e.g. ``callback``)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def normalize_phone(value: str, region: str = DEFAULT_REGION) -> str | None:
    """The E.164 form of a phone number, or None when ``value`` is not one."""
    text = value.strip()
    if not re.search(r"\d{3}", text.replace(" ", "").replace("-", "")):
        return None
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_datetime(value: Any) -> datetime | None:
    """A timezone-aware datetime from ISO text, epoch milliseconds or a datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return _aware(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    text = str(value).strip().replace("Z", "+00:00")
    try:
        return _aware(datetime.fromisoformat(text))
    except ValueError:
        return None


def _aware(value: datetime) -> datetime:
    """Naive times are the business's wall clock; they are compared as if UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def wall_clock_now() -> datetime:
    """Now on the business's wall clock, in the form records compare with."""
    return _aware(datetime.now())
