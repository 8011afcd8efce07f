"""``POST /Calls.json`` answered like Twilio: checks the dial, queues the call, rings the callee.

:class:`FakeDialer` is the fake REST API's outbound desk (``FakeTwilioRest.dialer``):
register a :class:`~simulator.outbound.callee.Callee` per number (``default`` for the
rest), then every accepted create is a :class:`DialedCall` played out by
:func:`~simulator.outbound.call_flow.run_dialed_call` in the fake's event loop. Errors are
Twilio's: 21201 (no 'To'), 21211 (invalid 'To'), 21212 (invalid 'From'), 21205 (no 'Url'
nor 'Twiml'), 21626 (bad 'StatusCallbackEvent'), the callee's own create error (21215,
21216...), and 20001 for other values out of range (the fake's choice).
"""

from __future__ import annotations

import asyncio
import time

from integrations.crm.base import normalize_phone
from integrations.speech.base import SpeechRecognizer
from simulator.fake_twilio_calls import FakeCall, call_json, error_body
from simulator.outbound.call_flow import run_dialed_call
from simulator.outbound.callbacks import CallbackSender
from simulator.outbound.callee import Callee, Person
from simulator.outbound.dialed_call import DialedCall
from simulator.phone import new_sid

STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
MACHINE_DETECTION = ("Enable", "DetectMessageEnd")
_MESSAGES = {
    21201: "No 'To' number is specified",
    21205: "Url parameter is required.",
    21211: "Invalid 'To' Phone Number: {to}",
    21212: "Invalid From Number (caller ID): {from_}",
    21215: "Account not authorized to call {to}. Perhaps you need to enable some "
    "international permissions",
    21216: "Account not allowed to call {to}",
    13227: "Geographic permission not enabled for this number: {to}",
}


class DialError(Exception):
    """A create Twilio refuses (``code``, HTTP ``status``, ``message``)."""

    def __init__(self, code: int, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.status = status


def check_create(form: dict[str, str], events: list[str]) -> tuple[str, str, tuple[str, ...]]:
    """The normalised To, From and status events of a create, or the error Twilio gives.

    Raises:
        DialError: a missing or invalid parameter.
    """
    raw_to = form.get("To", "").strip()
    if not raw_to:
        raise DialError(21201, _MESSAGES[21201])
    to = raw_to if raw_to.startswith(("sip:", "client:")) else normalize_phone(raw_to)
    if to is None:
        raise DialError(21211, _MESSAGES[21211].format(to=raw_to))
    raw_from = form.get("From", "").strip()
    from_number = normalize_phone(raw_from) if raw_from else None
    if from_number is None:
        raise DialError(21212, _MESSAGES[21212].format(from_=raw_from))
    if not form.get("Url") and not form.get("Twiml"):
        raise DialError(21205, _MESSAGES[21205])
    asked = [e for value in events for e in value.replace(",", " ").split()]
    if any(e not in STATUS_EVENTS for e in asked):
        raise DialError(21626, "Invalid 'StatusCallbackEvent'")
    if form.get("MachineDetection") and form["MachineDetection"] not in MACHINE_DETECTION:
        raise DialError(20001, "MachineDetection must be Enable or DetectMessageEnd")
    for name, low, high in (("Timeout", 1, 600), ("MachineDetectionTimeout", 3, 59)):
        value = form.get(name)
        if value is not None and not (value.isdigit() and low <= int(value) <= high):
            raise DialError(20001, f"{name} must be a whole number of seconds, {low}-{high}")
    if form.get("StatusCallback") and not asked:
        asked = ["completed"]  # Twilio's default event
    return to, from_number, tuple(dict.fromkeys(asked))


class FakeDialer:
    """The fake REST API's outbound calls and the callees they ring."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        records: dict[str, FakeCall],
        *,
        default: Callee | None = None,
    ):
        """Place calls for ``account_sid``, signing webhooks with ``auth_token``.

        Args:
            account_sid: The account.
            auth_token: Its auth token (webhook signatures).
            records: The fake's call records (outbound calls are added).
            default: Who answers numbers not registered (default: a silent :class:`Person`).
        """
        self.account_sid = account_sid
        self.sender = CallbackSender(auth_token)
        self.auth_token = auth_token
        self._records = records
        self.default: Callee = default or Person()
        self.callees: dict[str, Callee] = {}
        """Who answers each number's next call."""
        self._later: dict[str, list[Callee]] = {}
        self.calls: dict[str, DialedCall] = {}
        self.transcriber: SpeechRecognizer | None = None
        """Transcribes what callees heard, when set."""
        self._tasks: set[asyncio.Task[None]] = set()

    def register(self, number: str, callee: Callee, *then: Callee) -> None:
        """``callee`` answers calls to ``number``; given ``then``, each next call is the next's.

        E.g. ``register(n, NoAnswer(), Person(...))``: nobody answers the first call, a
        person every later one (a campaign's retry).
        """
        key = normalize_phone(number) or number
        self.callees[key] = callee
        self._later[key] = list(then)

    def callee_for(self, number: str) -> Callee:
        """Who answers the next call to ``number`` (moves a sequence on)."""
        callee = self.callees.get(number, self.default)
        later = self._later.get(number)
        if later:
            self.callees[number] = later.pop(0)
        return callee

    def create(
        self, account_sid: str, form: dict[str, str], events: list[str]
    ) -> tuple[int, dict[str, object]]:
        """Answer a create: ``(201, call JSON)`` with the call started, or a Twilio error."""
        try:
            to, from_number, asked = check_create(form, events)
            callee = self.callee_for(to)
            if callee.create_error is not None:
                code = callee.create_error
                message = _MESSAGES.get(code, "The call cannot be placed: {to}")
                raise DialError(code, message.format(to=to, from_=from_number))
        except DialError as e:
            return e.status, error_body(e.status, e.code, str(e))
        sid = new_sid("CA")
        record = FakeCall(sid, account_sid, "queued", direction="outbound-api")
        record.from_number, record.to_number = from_number, to
        self._records[sid] = record
        call = DialedCall(sid, account_sid, to, from_number, form, asked, callee, record)
        call.history.append(("queued", time.monotonic()))
        self.calls[sid] = call
        task = asyncio.get_running_loop().create_task(
            run_dialed_call(call, self), name=f"fake-dial-{sid}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return 201, call_json(record)

    def on_update(self, update: object) -> None:
        """The fake's update hook: a hang-up (``Status``) of an outbound call ends it."""
        call = self.calls.get(getattr(update, "call_sid", ""))
        if call is not None and getattr(update, "status", None):
            call.hang_up_requested.set()

    async def wait_for_end(self, sid: str, timeout: float = 30.0) -> DialedCall:
        """Wait until the call is over, callbacks sent (polls: any event loop may wait)."""
        async with asyncio.timeout(timeout):
            while True:
                call = self.calls.get(sid)
                if call is not None and call.done:
                    return call
                await asyncio.sleep(0.02)

    async def wait_for_call(self, timeout: float = 30.0, *, to: str | None = None) -> DialedCall:
        """Wait for the first call placed (to ``to``, if given)."""
        async with asyncio.timeout(timeout):
            while True:
                found = [c for c in self.calls.values() if to is None or c.to == to]
                if found:
                    return found[0]
                await asyncio.sleep(0.02)

    async def aclose(self) -> None:
        """Stop calls still running."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
