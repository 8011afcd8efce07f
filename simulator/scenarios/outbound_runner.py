"""Runs outbound scenarios: the agent is asked to call, the fake Twilio rings a simulated callee.

The callee is registered on the fake REST API the agent dials through (its
``TWILIO_API_BASE_URL``), then the call is started the way an operator starts one:
``POST {agent}/api/calls/outbound`` with the operator token and ``{"to", "agent",
"variables"}``. The fake places it (answer webhook, Media Stream, callbacks), the callee
plays, and the expectations are checked against what the fake saw and, where the agent
reports them, the call's record (``disposition``) and the attempt (``retry_after``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx

from integrations.speech.base import SpeechRecognizer
from simulator.fake_twilio import FakeTwilioRest
from simulator.outbound.dialed_call import DialedCall
from simulator.scenarios.outbound import OutboundScenario

CALL_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class OutboundCheck:
    """One expectation: ``ok`` None when it could not be checked (``detail`` says why)."""

    name: str
    ok: bool | None
    detail: str = ""


@dataclass
class OutboundResult:
    """What came of one outbound scenario."""

    scenario_id: str
    attempt: dict[str, Any] = field(default_factory=dict)
    call: DialedCall | None = None
    checks: list[OutboundCheck] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        """No error and no failed check."""
        return self.error is None and all(c.ok is not False for c in self.checks)


async def start_outbound_call(
    http: httpx.AsyncClient,
    base_url: str,
    operator_token: str,
    *,
    to: str,
    agent: str | None,
    variables: dict[str, str],
) -> dict[str, Any]:
    """``POST /api/calls/outbound``: the agent places one call; returns its JSON answer.

    Raises:
        httpx.HTTPStatusError: the agent refused (4xx/5xx).
    """
    body: dict[str, Any] = {"to": to, "variables": variables}
    if agent:
        body["agent"] = agent
    response = await http.post(
        f"{base_url.rstrip('/')}/api/calls/outbound",
        json=body,
        headers={"Authorization": f"Bearer {operator_token}"},
        timeout=30,
    )
    response.raise_for_status()
    return dict(response.json())


async def run_outbound_scenario(
    scenario: OutboundScenario,
    rest: FakeTwilioRest,
    base_url: str,
    operator_token: str,
    http: httpx.AsyncClient,
    *,
    transcriber: SpeechRecognizer | None = None,
    timeout_s: float = CALL_TIMEOUT_S,
) -> OutboundResult:
    """Ask the agent to call the scenario's contact and check what came of it; never raises.

    ``transcriber`` (e.g. the in-process agent's ASR) transcribes what the callee heard,
    for ``heard_contains``; without one those checks are reported as not checked.
    """
    result = OutboundResult(scenario.id)
    if transcriber is not None:
        rest.dialer.transcriber = transcriber
    rest.dialer.register(scenario.phone, scenario.callee)
    before = set(rest.dialer.calls)
    try:
        result.attempt = await start_outbound_call(
            http,
            base_url,
            operator_token,
            to=scenario.phone,
            agent=scenario.agent,
            variables=scenario.variables,
        )
        call = await _placed(rest, before, timeout_s)
        result.call = await rest.dialer.wait_for_end(call.sid, timeout=timeout_s)
    except (httpx.HTTPError, TimeoutError) as e:
        result.error = f"{type(e).__name__}: {e}"
        return result
    record = await _read(http, base_url, operator_token, f"/api/calls/{result.call.sid}")
    attempt_id = result.attempt.get("attempt_id")
    attempt = (
        await _read(http, base_url, operator_token, f"/api/calls/outbound/{attempt_id}")
        if attempt_id
        else None
    )
    result.checks = check_outbound(scenario, result.call, record, attempt)
    return result


async def _placed(rest: FakeTwilioRest, before: set[str], timeout_s: float) -> DialedCall:
    async with asyncio.timeout(timeout_s):
        while True:
            new = [c for sid, c in rest.dialer.calls.items() if sid not in before]
            if new:
                return new[0]
            await asyncio.sleep(0.05)


async def _read(
    http: httpx.AsyncClient, base_url: str, token: str, path: str
) -> dict[str, Any] | None:
    try:
        response = await http.get(
            f"{base_url.rstrip('/')}{path}", headers={"Authorization": f"Bearer {token}"}
        )
    except httpx.HTTPError:
        return None
    return dict(response.json()) if response.status_code == 200 else None


def check_outbound(
    scenario: OutboundScenario,
    call: DialedCall,
    record: dict[str, Any] | None,
    attempt: dict[str, Any] | None,
) -> list[OutboundCheck]:
    """Each expectation of the scenario against the call, its record and its attempt."""
    expect = scenario.expect
    checks: list[OutboundCheck] = []
    if expect.call_status:
        checks.append(_equal("call_status", expect.call_status, call.status))
    if expect.answered_by:
        checks.append(_equal("answered_by", expect.answered_by, call.answered_by))
    if expect.disposition:
        found = (record or {}).get("disposition")
        checks.append(
            _equal("disposition", expect.disposition, found)
            if found is not None
            else OutboundCheck("disposition", None, "the call's record has no disposition")
        )
    if expect.heard_contains or expect.heard_excludes:
        checks.append(_heard(call, expect.heard_contains, expect.heard_excludes))
    if expect.message_after_beep_max_s is not None:
        after = call.log.message_after_beep_s
        ok = after is not None and 0 <= after <= expect.message_after_beep_max_s
        checks.append(OutboundCheck("message_after_beep", ok, f"{after} s"))
    if expect.retry_after is not None:
        found = (attempt or {}).get("retry_after_s")
        checks.append(
            OutboundCheck("retry_after", None, "the attempt reports no retry_after_s")
            if found is None
            else OutboundCheck(
                "retry_after", abs(float(found) - expect.retry_after) < 1, f"{found} s"
            )
        )
    return checks


def _equal(name: str, expected: str, found: object) -> OutboundCheck:
    return OutboundCheck(name, found == expected, f"expected {expected}, got {found}")


def _heard(
    call: DialedCall, groups: tuple[tuple[str, ...], ...], excluded: tuple[str, ...]
) -> OutboundCheck:
    if call.heard_text is None:
        return OutboundCheck("heard", None, "no transcriber")
    text = call.heard_text.lower()
    missing = [g for g in groups if not any(w in text for w in g)]
    present = [w for w in excluded if w in text]
    ok = not missing and not present
    return OutboundCheck("heard", ok, f"missing {missing}, unwanted {present}" if not ok else "")
