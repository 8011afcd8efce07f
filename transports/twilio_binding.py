"""Each Twilio media stream bound to the voice webhook that created it, once per call.

Twilio signs a Media Streams WebSocket upgrade over the stream URL alone, with no timestamp,
and a ``<Stream url>`` takes no query string: one captured signature opens streams forever,
and the ``start`` message's ``callSid`` is whatever the sender wrote. So:

* the (signature-checked) voice webhook issues a **stream token**, an HMAC-SHA256 under a
  key derived from the auth token over the CallSid, the AccountSid, the stream's other
  ``<Parameter>`` values and an expiry. It goes to Twilio as one more ``<Parameter>`` and
  comes back in the ``start`` message's ``customParameters``
  (:data:`STREAM_TOKEN_PARAMETER`);
* a stream is admitted only if its ``start`` carries an unexpired token matching its
  ``callSid``, ``accountSid`` and parameters (:class:`SignedStreams`), and
* only once per CallSid: a :class:`CallSidLedger` knows the CallSids streaming now and
  those that streamed recently, so a replayed webhook or stream never gives a call a
  second stream. Twilio's signatures carry no timestamp, so replays die here. The ledger
  lives in the deployment's shared state (:class:`SharedCallSidLedger`), so a replay sent
  to another server process (or host) dies too.

Takes plain values (the bot passes them from settings); reads no configuration. Errors and
log lines carry no caller data (no parameters, no token).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from types import TracebackType

from loguru import logger

from integrations.shared_state.base import SharedState, SharedStateError
from integrations.signed_tokens import SignedTokenError, TokenFailure, TokenSigner
from transports.twilio import TwilioStreamStart

STREAM_TOKEN_PARAMETER = "callagentStreamToken"
"""The ``<Parameter>`` name of the stream token (never logged)."""
DEFAULT_TOKEN_TTL_S = 120.0
"""How long after the webhook Twilio may open the stream (it does so within seconds)."""
FINISHED_RETENTION_S = 4 * 3600.0 + DEFAULT_TOKEN_TTL_S
"""How long a finished CallSid is remembered. Longer than a token's life: a replayed webhook
(valid forever) would otherwise get a fresh token for a call that is still up elsewhere (e.g.
transferred to a person). Four hours is Twilio's default longest call (``TimeLimit``)."""
_CALL_SID_KEY = "callagent:callsid:"
_KEY_LABEL = "callagent/twilio-stream-binding/v2"


class StreamBindingError(Exception):
    """A stream (or webhook) is refused by the binding; the message holds no caller data."""


class StreamTokenSigner:
    """Issues and checks stream tokens (:class:`integrations.signed_tokens.TokenSigner`).

    A token is ``<expiry>.<HMAC-SHA256, base64url>`` over the AccountSid, the CallSid and
    the stream's other ``<Parameter>`` values (so ``From`` cannot be changed on the way
    either).
    """

    def __init__(self, signer: TokenSigner):
        """Sign with ``signer`` (its purpose label must be this binding's)."""
        self._signer = signer

    @classmethod
    def for_auth_token(
        cls,
        auth_token: str,
        *,
        ttl_s: float = DEFAULT_TOKEN_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> StreamTokenSigner:
        """A signer keyed by HMAC(auth token, a fixed label): every server of the account agrees."""
        if not auth_token:
            raise ValueError("stream tokens need the Twilio auth token")
        return cls(TokenSigner(auth_token, _KEY_LABEL, ttl_s=ttl_s, clock=clock))

    def issue(self, call_sid: str, account_sid: str, parameters: Mapping[str, str]) -> str:
        """The token for this call's stream (``parameters``: the TwiML's other ``<Parameter>``)."""
        return self._signer.issue(_claims(call_sid, account_sid, parameters)).token

    def verify(
        self, token: str, call_sid: str, account_sid: str, parameters: Mapping[str, str]
    ) -> None:
        """Check a token against what the stream's ``start`` says.

        Raises:
            StreamBindingError: malformed, not issued for this call and parameters, or expired.
        """
        try:
            self._signer.verify(token, _claims(call_sid, account_sid, parameters))
        except SignedTokenError as e:
            raise StreamBindingError(_FAILURES[e.reason]) from None


_FAILURES: dict[TokenFailure, str] = {
    "malformed": "malformed stream token",
    "mismatch": "stream token does not match the call (CallSid/AccountSid)",
    "expired": "stream token expired",
}


def _claims(call_sid: str, account_sid: str, parameters: Mapping[str, str]) -> list[str]:
    """AccountSid, CallSid, then the parameters as sorted ``name``, ``value`` pairs."""
    pairs = sorted(parameters.items())
    return [account_sid, call_sid, *(item for pair in pairs for item in pair)]


class CallSidLedger(ABC):
    """Which CallSids have a stream now, or had one recently (async: may be shared, e.g. Redis)."""

    @abstractmethod
    async def is_known(self, call_sid: str) -> bool:
        """Whether ``call_sid`` is streaming now or finished recently."""

    @abstractmethod
    async def claim(self, call_sid: str) -> bool:
        """Mark ``call_sid`` streaming; False (and no change) if it is already known."""

    @abstractmethod
    async def finish(self, call_sid: str) -> None:
        """The stream of ``call_sid`` ended; it stays known for the retention time."""


class SharedCallSidLedger(CallSidLedger):
    """The deployment's ledger, in its shared state: every process admits a CallSid once.

    One key per CallSid (``callagent:callsid:<CallSid>``, the provider's id, no caller
    data): ``live`` while it streams, ``finished`` after, expiring
    :data:`FINISHED_RETENTION_S` after the claim or the end (Twilio ends a call by then, so
    a process killed mid-call leaves nothing behind for longer). The claim is one atomic
    set-if-absent, so of two processes given the same stream (a replay) exactly one admits
    it.

    Args:
        shared: The deployment's shared state (``Runtime.shared``; in-process by default).
        retain_finished_s: How long a finished (or live) CallSid is remembered.
    """

    def __init__(self, shared: SharedState, *, retain_finished_s: float = FINISHED_RETENTION_S):
        """Keep CallSids in ``shared`` for ``retain_finished_s``."""
        self._shared = shared
        self._retain_s = retain_finished_s

    async def is_known(self, call_sid: str) -> bool:
        """Whether ``call_sid`` is streaming now or finished recently."""
        return await self._shared.get(_CALL_SID_KEY + call_sid) is not None

    async def claim(self, call_sid: str) -> bool:
        """Mark ``call_sid`` streaming; False (and no change) if it is already known."""
        return await self._shared.put(
            _CALL_SID_KEY + call_sid, "live", ttl_s=self._retain_s, only_if_absent=True
        )

    async def finish(self, call_sid: str) -> None:
        """The stream of ``call_sid`` ended; it stays known for the retention time.

        The shared state failing here changes nothing: the ``live`` key the claim wrote
        keeps the CallSid known as long (the call's end is not an error).
        """
        try:
            await self._shared.put(_CALL_SID_KEY + call_sid, "finished", ttl_s=self._retain_s)
        except SharedStateError as e:
            logger.warning(f"Twilio stream for {call_sid}: its end not noted in the ledger ({e})")


class StreamLease:
    """An admitted stream's hold on its CallSid; leaving it (``async with``) finishes it."""

    def __init__(self, ledger: CallSidLedger, call_sid: str):
        """Hold ``call_sid`` (already claimed in ``ledger``)."""
        self._ledger = ledger
        self.call_sid = call_sid

    async def __aenter__(self) -> StreamLease:
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        await self._ledger.finish(self.call_sid)


class StreamBinding(ABC):
    """How a stream proves it belongs to a webhook; every binding admits a CallSid once."""

    def __init__(self, ledger: CallSidLedger):
        """Admit each CallSid once, as ``ledger`` knows them."""
        self.ledger = ledger

    @abstractmethod
    def stream_parameters(
        self, call_sid: str, account_sid: str, parameters: Mapping[str, str]
    ) -> dict[str, str]:
        """The ``<Parameter>`` values for the TwiML: ``parameters`` plus any binding."""

    @abstractmethod
    def check(self, start: TwilioStreamStart) -> None:
        """Check a ``start`` message against the binding.

        Raises:
            StreamBindingError: the stream is not bound to a webhook for its call.
        """

    async def check_webhook(self, call_sid: str) -> None:
        """Refuse a webhook for a call that streams, or streamed, here.

        Raises:
            StreamBindingError: the CallSid already has (or had) a stream.
        """
        if call_sid and await self.ledger.is_known(call_sid):
            raise StreamBindingError("this CallSid already has (or had) a media stream")

    async def admit(self, start: TwilioStreamStart) -> StreamLease:
        """Check ``start`` and claim its CallSid; the lease releases it when the call ends.

        Raises:
            StreamBindingError: not bound, or the CallSid already has (or had) a stream.
        """
        self.check(start)  # before claiming: a forged start cannot burn a real call's CallSid
        if not await self.ledger.claim(start.call_sid):
            raise StreamBindingError("this CallSid already has (or had) a media stream")
        return StreamLease(self.ledger, start.call_sid)


class SignedStreams(StreamBinding):
    """Streams must carry the token the webhook issued for their call (signatures checked)."""

    def __init__(self, signer: StreamTokenSigner, ledger: CallSidLedger):
        """Bind with ``signer``'s tokens, and ``ledger`` for once-per-call."""
        super().__init__(ledger)
        self._signer = signer

    def stream_parameters(
        self, call_sid: str, account_sid: str, parameters: Mapping[str, str]
    ) -> dict[str, str]:
        """``parameters`` plus the stream token.

        Raises:
            StreamBindingError: the webhook has no CallSid or AccountSid to bind to.
        """
        if not call_sid or not account_sid:
            raise StreamBindingError("the webhook has no CallSid or AccountSid")
        token = self._signer.issue(call_sid, account_sid, parameters)
        return {**parameters, STREAM_TOKEN_PARAMETER: token}

    def check(self, start: TwilioStreamStart) -> None:
        """The ``start`` must carry a token issued for its CallSid, AccountSid and parameters.

        Raises:
            StreamBindingError: no token, a token for another call or parameters, or expired.
        """
        parameters = dict(start.custom_parameters)
        token = parameters.pop(STREAM_TOKEN_PARAMETER, "")
        if not token:
            raise StreamBindingError("no stream token (the stream did not come from our TwiML)")
        self._signer.verify(token, start.call_sid, start.account_sid, parameters)


class UnboundStreams(StreamBinding):
    """Any stream may start (no auth token to sign with: loopback, or the insecure setting)."""

    def stream_parameters(
        self, call_sid: str, account_sid: str, parameters: Mapping[str, str]
    ) -> dict[str, str]:
        """``parameters`` unchanged."""
        return dict(parameters)

    def check(self, start: TwilioStreamStart) -> None:
        """Nothing to check."""
