"""An outbound scenario's expectations, checked against what the fake saw and the agent reports.

* ``call_status``, ``answered_by``, ``heard_*``, ``message_after_beep_max_s``: the call as the
  fake Twilio placed it (:class:`~simulator.outbound.dialed_call.DialedCall`).
* ``disposition``: the attempt's (``GET /api/calls/outbound/{id}``), the agent's truth.
* ``do_not_call``: the number is on ``GET /api/dnc`` and a second dial is refused with 409.
* Always, for a call that reached the agent: its record (``GET /api/calls/{call_id}``) is
  outbound, carries the fake's CallSid as ``provider_call_id``, the attempt's number and its
  disposition (issue 17's record contract).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulator.outbound.dialed_call import DialedCall
from simulator.scenarios.outbound import OutboundScenario


@dataclass(frozen=True)
class OutboundCheck:
    """One expectation: ``ok`` None when it could not be checked (``detail`` says why)."""

    name: str
    ok: bool | None
    detail: str = ""


def check_outbound(
    scenario: OutboundScenario,
    *,
    call: DialedCall | None,
    attempt: dict[str, Any],
    record: dict[str, Any] | None,
    on_dnc_list: bool | None = None,
    redial_status: int | None = None,
) -> list[OutboundCheck]:
    """Each expectation of the scenario, then the record contract (see the module)."""
    expect = scenario.expect
    checks: list[OutboundCheck] = []
    if expect.call_status:
        checks.append(_equal("call_status", expect.call_status, call and call.status))
    if expect.answered_by:
        checks.append(_equal("answered_by", expect.answered_by, call and call.answered_by))
    if expect.disposition:
        if attempt.get("state") != "ended":
            checks.append(
                OutboundCheck("disposition", False, f"the attempt has not ended: {attempt}")
            )
        else:
            checks.append(_equal("disposition", expect.disposition, attempt.get("disposition")))
    if expect.heard_contains or expect.heard_excludes:
        checks.append(_heard(call, expect.heard_contains, expect.heard_excludes))
    if expect.message_after_beep_max_s is not None:
        after = call.log.message_after_beep_s if call else None
        ok = after is not None and 0 <= after <= expect.message_after_beep_max_s
        checks.append(OutboundCheck("message_after_beep", ok, f"{after} s"))
    if expect.do_not_call is not None:
        checks.append(_do_not_call(expect.do_not_call, on_dnc_list, redial_status))
    if call is not None and call.emulator is not None:  # the call reached the agent
        checks.append(_record(call, attempt, record))
    return checks


def _equal(name: str, expected: str, found: object) -> OutboundCheck:
    return OutboundCheck(name, found == expected, f"expected {expected}, got {found}")


def _heard(
    call: DialedCall | None, groups: tuple[tuple[str, ...], ...], excluded: tuple[str, ...]
) -> OutboundCheck:
    if call is None or call.heard_text is None:
        return OutboundCheck("heard", None, "no transcriber, or nothing was heard")
    text = call.heard_text.lower()
    missing = [g for g in groups if not any(w in text for w in g)]
    present = [w for w in excluded if w in text]
    ok = not missing and not present
    return OutboundCheck(
        "heard", ok, f"missing {missing}, unwanted {present}: {text!r}" if not ok else ""
    )


def _do_not_call(expected: bool, on_list: bool | None, redial_status: int | None) -> OutboundCheck:
    if on_list is None:
        return OutboundCheck("do_not_call", None, "the do-not-call list could not be read")
    refused = redial_status == 409
    ok = on_list == expected and refused == expected
    return OutboundCheck(
        "do_not_call", ok, f"on the list: {on_list}; a second dial answered HTTP {redial_status}"
    )


def _record(
    call: DialedCall, attempt: dict[str, Any], record: dict[str, Any] | None
) -> OutboundCheck:
    if record is None:
        call_id = attempt.get("call_id")
        why = f"GET /api/calls/{call_id} found nothing" if call_id else "no call_id"
        return OutboundCheck("record", False, f"the answered call has no record ({why})")
    expected = {
        "direction": "outbound",
        "provider_call_id": call.sid,
        "attempt": attempt.get("number"),
        "disposition": attempt.get("disposition"),
    }
    wrong = {k: record.get(k) for k, v in expected.items() if record.get(k) != v}
    detail = f"differs from {expected}: {wrong}" if wrong else f"{expected}"
    return OutboundCheck("record", not wrong, detail)
