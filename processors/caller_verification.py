"""Caller verification: a PIN (keyed or spoken) or the date of birth before sensitive intents.

Sits between the CRM prefetch and the dialogue. When a known caller asks for an intent the
agent lists under ``verification.required_for`` and has not been verified yet, the turn is
held and the caller is asked for their PIN or date of birth; on a match the record's
authentication status becomes ``verified`` (a new :class:`CallerRecordFrame` is pushed, so
the escalation summary carries it) and the held turn goes on to the dialogue. After
``max_attempts`` misses it becomes ``failed`` and the request is declined. Asking for a person
(or pressing 0) at any point goes straight on. Nothing here logs what the caller entered.
"""

from __future__ import annotations

import hmac
from datetime import date
from typing import Any

from loguru import logger
from pipecat.frames.frames import Frame, TTSSpeakFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from integrations.crm.base import Authentication, AuthMethod, AuthStatus, CallerRecord
from processors.agent_definition import VerificationConfig
from processors.frames import (
    Band,
    BotReplyFrame,
    CallerRecordFrame,
    NLUResultFrame,
    PrefetchStatus,
)


class CallerVerificationProcessor(FrameProcessor):
    """Holds sensitive turns until the caller is verified."""

    def __init__(
        self,
        config: VerificationConfig,
        *,
        call_id: str,
        pass_through_intents: frozenset[str] = frozenset({"talk_to_human", "goodbye"}),
        **kwargs: Any,
    ):
        """Configure verification.

        Args:
            config: The agent's verification policy.
            call_id: For log lines.
            pass_through_intents: Intents that interrupt a pending verification.
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._config = config
        self._call_id = call_id
        self._pass = pass_through_intents
        self._record: CallerRecord | None = None
        self._held: NLUResultFrame | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Track the record; hold, check and release turns."""
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, CallerRecordFrame):
            if frame.record is not None:
                self._record = frame.record
            await self.push_frame(frame, direction)
        elif direction is FrameDirection.DOWNSTREAM and isinstance(frame, NLUResultFrame):
            await self._on_turn(frame)
        else:
            await self.push_frame(frame, direction)

    async def _on_turn(self, nlu: NLUResultFrame) -> None:
        record = self._record
        if self._held is not None and record is not None:
            if nlu.intent in self._pass and nlu.band is Band.ACT:
                self._held = None
                await self.push_frame(nlu)
                return
            await self._check(nlu, record)
            return
        needs = (
            record is not None
            and nlu.band is Band.ACT
            and nlu.intent in self._config.required_for
            and record.auth.status is not AuthStatus.VERIFIED
        )
        if not needs:
            await self.push_frame(nlu)
            return
        assert record is not None
        if record.auth.status is AuthStatus.FAILED:
            await self._say(self._config.failed)
            return
        if not (record.secrets.get("pin") or record.secrets.get("date_of_birth")):
            await self.push_frame(nlu)  # nothing to verify against
            return
        self._held = nlu
        logger.bind(customer_id=record.customer_id).info("asking the customer to verify")
        await self._say(self._config.prompt)

    async def _check(self, nlu: NLUResultFrame, record: CallerRecord) -> None:
        method = match(nlu.entities, record.secrets)
        attempts = record.auth.attempts + 1
        if method is not AuthMethod.NONE:
            auth = Authentication(AuthStatus.VERIFIED, method, attempts)
            await self._update(record.with_auth(auth))
            logger.bind(customer_id=record.customer_id).info(f"customer verified ({method.value})")
            held, self._held = self._held, None
            await self._say(self._config.verified)
            if held is not None:
                await self.push_frame(held)
            return
        if attempts < self._config.max_attempts:
            await self._update(
                record.with_auth(Authentication(AuthStatus.UNVERIFIED, AuthMethod.NONE, attempts))
            )
            await self._say(self._config.retry)
            return
        self._held = None
        await self._update(
            record.with_auth(Authentication(AuthStatus.FAILED, AuthMethod.NONE, attempts))
        )
        logger.bind(customer_id=record.customer_id).info("customer failed verification")
        await self._say(self._config.failed)

    async def _update(self, record: CallerRecord) -> None:
        self._record = record
        await self.push_frame(
            CallerRecordFrame(record=record, update=True, status=PrefetchStatus.FOUND)
        )

    async def _say(self, text: str) -> None:
        await self.push_frame(BotReplyFrame(text=text, intent="verify_identity"))
        await self.push_frame(TTSSpeakFrame(text, append_to_context=True))


def match(entities: dict[str, Any], secrets: dict[str, str]) -> AuthMethod:
    """Which secret the caller's turn matches (PIN digits or date of birth), if any."""
    pin = secrets.get("pin", "")
    digits = str(entities.get("digits", "")).replace(" ", "").rstrip("#")
    if pin and digits and hmac.compare_digest(digits.encode(), pin.encode()):
        return AuthMethod.PIN
    dob = _date(secrets.get("date_of_birth", ""))
    spoken = entities.get("datetime")
    if dob is not None and isinstance(spoken, dict):
        said = _date(str(spoken.get("value", ""))[:10])
        if said is not None and (said.month, said.day) == (dob.month, dob.day):
            years = {said.year, *_years(digits)}
            if dob.year in years:
                return AuthMethod.DATE_OF_BIRTH
    return AuthMethod.NONE


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _years(digits: str) -> set[int]:
    return {int(digits[i : i + 4]) for i in range(max(0, len(digits) - 3))} if digits else set()
