"""Who the reminder campaign's contacts are on the simulated network (``--via twilio-sim``).

Each contact draws a kind at random: a person who confirms, cancels (a CRM demo patient,
who verifies with their PIN first, as the agent asks) or opts out by voice (the
simulator's caller voices), a voicemail with a beep, nobody answering (then, on the retry,
a person who confirms), a busy line, or a number Twilio refuses (21211). The kind says
which final outcome the agent should record, so the bench can print what it got per kind.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from integrations.crm.demo_data import DEMO_CUSTOMERS
from simulator.outbound.callee import (
    Busy,
    Callee,
    Failed,
    NoAnswer,
    Person,
    Press,
    Say,
    Voicemail,
)
from simulator.voices.caller_voice import FLITE_VOICES

VOICES = tuple(v for v in FLITE_VOICES if v in ("slt", "rms", "awb", "kal"))
MIX: Mapping[str, float] = {
    "confirm": 0.35,
    "cancel": 0.05,
    "opt-out": 0.1,
    "voicemail": 0.15,
    "late": 0.1,
    "no-answer": 0.1,
    "busy": 0.1,
    "failed": 0.05,
}
"""Kinds of contact and their shares (``cancel``: at most one per CRM demo patient)."""
EXPECTED = {
    "confirm": "confirmed",
    "cancel": "cancelled",
    "opt-out": "opted-out",
    "voicemail": "voicemail-left",
    "late": "confirmed",
    "no-answer": "no-answer",
    "busy": "busy",
    "failed": "failed",
}
"""The final outcome each kind should end with."""
APPOINTMENTS = ("Monday at 9 am", "Tuesday at 2 pm", "Friday at 10 am", "Thursday at 4 pm")


@dataclass(frozen=True)
class SimContact:
    """One contact: its row for the campaign and who answers its number, call by call."""

    kind: str
    phone: str
    first_name: str
    appointment: str
    callees: tuple[Callee, ...]
    voice: str = ""
    """The caller voice of the person or voicemail (none: nobody speaks)."""

    def row(self, timezone: str) -> dict[str, str]:
        """The campaign row (phone, time zone, the reminder agent's variables)."""
        return {
            "phone": self.phone,
            "timezone": timezone,
            "first_name": self.first_name,
            "appointment": self.appointment,
        }


def draw_contacts(n: int, seed: int = 17) -> list[SimContact]:
    """``n`` contacts with kinds drawn from :data:`MIX` (repeatable for a ``seed``)."""
    rng = random.Random(seed)
    patients = [c for c in DEMO_CUSTOMERS if c.get("account_status") != "inactive"]
    kinds, weights = list(MIX), list(MIX.values())
    contacts: list[SimContact] = []
    for i in range(n):
        kind = rng.choices(kinds, weights)[0]
        if kind == "cancel" and not patients:
            kind = "confirm"
        phone = f"+1555{3000000 + i:07d}"
        name = rng.choice(("Alex", "Sam", "Jordan", "Chris", "Robin", "Kim"))
        pin = ""
        if kind == "cancel":
            patient = patients.pop(0)
            phone, name, pin = patient["phone"], patient["first_name"], patient["pin"]
        appointment = rng.choice(APPOINTMENTS)
        voice = rng.choice(VOICES)
        callees = _callees(kind, name, pin, voice, rng)
        speaks = kind not in ("no-answer", "busy", "failed")
        contacts.append(
            SimContact(kind, phone, name, appointment, callees, voice if speaks else "")
        )
    return contacts


def _callees(kind: str, name: str, pin: str, voice: str, rng: random.Random) -> tuple[Callee, ...]:
    ring_s = round(rng.uniform(0.5, 4.0), 2)

    def person(*lines: Say | Press) -> Person:
        return Person(lines=lines, voice=voice, ring_s=ring_s)

    if kind == "confirm":
        return (person(Say("Yes.")),)
    if kind == "late":
        return (NoAnswer(), person(Say("Yes.")))
    if kind == "cancel":
        return (
            person(
                Say("I need to cancel that appointment, please."),
                Press(f"{pin}#"),
                Say("No, that's everything. Goodbye."),
            ),
        )
    if kind == "opt-out":
        return (person(Say("Please stop calling me. Take me off your list.")),)
    if kind == "voicemail":
        greeting = (
            f"Hi, you've reached {name}. I can't take your call right now. "
            "Please leave a message after the tone."
        )
        return (Voicemail(prompt=greeting, voice=voice, ring_s=ring_s, record_s=40),)
    if kind == "no-answer":
        return (NoAnswer(),)
    if kind == "busy":
        return (Busy(),)
    return (Failed(code=21211),)
