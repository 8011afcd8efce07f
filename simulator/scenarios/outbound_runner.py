"""Runs outbound scenarios: the agent is asked to call, the fake Twilio rings a simulated callee.

The callee is registered on the fake REST API the agent dials through (its
``TWILIO_API_BASE_URL``), then the call is started the way an operator starts one:
``POST {agent}/api/calls/outbound`` with the operator token and ``{"to", "agent",
"variables"}``. The fake places it (answer webhook, Media Stream, callbacks) and the callee
plays. What came of it is read from the agent's own API once the call is over: the attempt
(``GET /api/calls/outbound/{attempt_id}``: state, disposition, provider call id, call
record id), the call record (``GET /api/calls/{call_id}``) and, for an opt-out, the
do-not-call list (``GET /api/dnc``) and a second ``POST /api/calls/outbound``, which must be
refused (409). The checks are in :mod:`simulator.scenarios.outbound_checks`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from integrations.speech.base import SpeechRecognizer
from simulator.fake_twilio import FakeTwilioRest
from simulator.outbound.dialed_call import DialedCall
from simulator.scenarios.outbound import OutboundScenario
from simulator.scenarios.outbound_checks import OutboundCheck, check_outbound

CALL_TIMEOUT_S = 180.0
SETTLE_TIMEOUT_S = 20.0
"""After the call: longest wait for the attempt to end and its record to be complete."""

__all__ = [
    "AgentApi",
    "OutboundCheck",
    "OutboundResult",
    "run_outbound_scenario",
    "start_outbound_call",
]


@dataclass
class OutboundResult:
    """What came of one outbound scenario.

    Parameters:
        scenario_id: The file's stem; name: the scenario's name.
        placed: The agent's answer to ``POST /api/calls/outbound`` (its HTTP status too).
        attempt: The attempt as the agent reports it once ended.
        record: The call record, when the call reached the agent.
        call: The call as the fake Twilio saw it (None: never placed).
        on_dnc_list: Whether the number was on the do-not-call list afterwards (opt-out).
        redial_status: HTTP status of a second ``POST /api/calls/outbound`` (opt-out).
        checks: Each expectation's result.
        error: Why the scenario could not run, else None.
        duration_s: Wall time of the scenario.
    """

    scenario_id: str
    name: str = ""
    placed: dict[str, Any] = field(default_factory=dict)
    attempt: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] | None = None
    call: DialedCall | None = None
    on_dnc_list: bool | None = None
    redial_status: int | None = None
    checks: list[OutboundCheck] = field(default_factory=list)
    error: str | None = None
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        """No error and no failed check."""
        return self.error is None and all(c.ok is not False for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for the report (the record with its turns, as the API gives it)."""
        call = self.call
        return {
            "scenario": self.scenario_id,
            "name": self.name,
            "passed": self.passed,
            "error": self.error,
            "duration_s": round(self.duration_s, 2),
            "attempt": self.attempt,
            "record": self.record,
            "call": None
            if call is None
            else {
                "sid": call.sid,
                "status": call.status,
                "answered_by": call.answered_by,
                "callee_said": call.log.said,
                "hung_up_by": call.log.hung_up_by,
                "message_after_beep_s": call.log.message_after_beep_s,
                "heard_text": call.heard_text,
                "error": call.error,
            },
            "on_dnc_list": self.on_dnc_list,
            "redial_status": self.redial_status,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
        }


class AgentApi:
    """The agent's operator API, as the runner uses it."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, operator_token: str) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {operator_token}"}

    async def place(
        self, to: str, agent: str | None, variables: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        """``POST /api/calls/outbound``: the HTTP status and the JSON answer."""
        body: dict[str, Any] = {"to": to, "variables": variables}
        if agent:
            body["agent"] = agent
        response = await self._http.post(
            f"{self._base}/api/calls/outbound", json=body, headers=self._headers, timeout=30
        )
        try:
            data = response.json()
        except ValueError:
            data = {"detail": response.text[:200]}
        return response.status_code, dict(data) if isinstance(data, dict) else {}

    async def get(self, path: str) -> dict[str, Any] | None:
        """A JSON object from the API (None: not found, refused or unreachable)."""
        try:
            response = await self._http.get(f"{self._base}{path}", headers=self._headers)
        except httpx.HTTPError:
            return None
        return dict(response.json()) if response.status_code == 200 else None

    async def ended_attempt(self, attempt_id: str, timeout_s: float) -> dict[str, Any]:
        """The attempt once it has ended (as it is at ``timeout_s``, else)."""
        found: dict[str, Any] = {}
        deadline = time.monotonic() + timeout_s
        while True:
            found = await self.get(f"/api/calls/outbound/{attempt_id}") or found
            if found.get("state") == "ended" or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.2)

    async def finished_record(
        self, call_id: str, disposition: str | None, timeout_s: float
    ) -> dict[str, Any] | None:
        """The call record once it is closed and carries ``disposition`` (as it is, else)."""
        found: dict[str, Any] | None = None
        deadline = time.monotonic() + timeout_s
        while True:
            found = await self.get(f"/api/calls/{call_id}") or found
            done = found is not None and found.get("ended_at") is not None
            if (done and found and found.get("disposition") == disposition) or (
                time.monotonic() > deadline
            ):
                return found
            await asyncio.sleep(0.2)

    async def on_dnc_list(self, phone: str) -> bool | None:
        """Whether ``phone`` is on the do-not-call list (None: the list could not be read)."""
        listed = await self.get("/api/dnc?limit=1000")
        if listed is None:
            return None
        return any(entry.get("phone") == phone for entry in listed.get("numbers", []))


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
    status, data = await AgentApi(http, base_url, operator_token).place(to, agent, variables)
    if status >= 400:
        request = httpx.Request("POST", f"{base_url.rstrip('/')}/api/calls/outbound")
        raise httpx.HTTPStatusError(
            f"HTTP {status}: {data.get('detail')}",
            request=request,
            response=httpx.Response(status, request=request),
        )
    return data


async def run_outbound_scenario(
    scenario: OutboundScenario,
    rest: FakeTwilioRest,
    base_url: str,
    operator_token: str,
    http: httpx.AsyncClient,
    *,
    transcriber: SpeechRecognizer | None = None,
    timeout_s: float = CALL_TIMEOUT_S,
    settle_s: float = SETTLE_TIMEOUT_S,
) -> OutboundResult:
    """Ask the agent to call the scenario's contact and check what came of it; never raises.

    ``transcriber`` (e.g. the in-process agent's ASR) transcribes what the callee heard,
    for ``heard_contains``; without one those checks are reported as not checked.
    """
    started = time.monotonic()
    result = OutboundResult(scenario.id, scenario.name)
    try:
        api = AgentApi(http, base_url, operator_token)
        await _run(scenario, rest, api, result, transcriber, timeout_s, settle_s)
    except (httpx.HTTPError, TimeoutError) as e:
        result.error = f"{type(e).__name__}: {e}"
    result.duration_s = time.monotonic() - started
    return result


async def _run(
    scenario: OutboundScenario,
    rest: FakeTwilioRest,
    api: AgentApi,
    result: OutboundResult,
    transcriber: SpeechRecognizer | None,
    timeout_s: float,
    settle_s: float,
) -> None:
    if transcriber is not None:
        rest.dialer.transcriber = transcriber
    rest.dialer.register(scenario.phone, scenario.callee)
    status, placed = await api.place(scenario.phone, scenario.agent, scenario.variables)
    result.placed = {"http_status": status, **placed}
    attempt_id = placed.get("attempt_id")
    if status != 201 and not (status == 502 and attempt_id):  # 502: Twilio refused the dial
        result.error = f"the agent refused the call: HTTP {status}: {placed.get('detail')}"
        return
    sid = placed.get("provider_call_id")
    if sid:
        result.call = await rest.dialer.wait_for_end(str(sid), timeout=timeout_s)
    result.attempt = await api.ended_attempt(str(attempt_id), settle_s)
    call_id = result.attempt.get("call_id")
    if call_id:
        result.record = await api.finished_record(
            str(call_id), result.attempt.get("disposition"), settle_s
        )
    if scenario.expect.do_not_call:
        result.on_dnc_list = await api.on_dnc_list(scenario.phone)
        result.redial_status, _ = await api.place(
            scenario.phone, scenario.agent, scenario.variables
        )
    result.checks = check_outbound(
        scenario,
        call=result.call,
        attempt=result.attempt,
        record=result.record,
        on_dnc_list=result.on_dnc_list,
        redial_status=result.redial_status,
    )
