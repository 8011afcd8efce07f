"""aiosipua's UAS with the endpoint's fixes to how it answers on its own, and SIP INFO.

aiosipua's answers outside a call handler (OPTIONS, and its 481/500/405/400 errors) add a
fresh To tag even when the request's To already carries ours (an in-dialog OPTIONS, a BYE
on a dialog it forgot), so the peer sees ``;tag=<ours>;tag=<another>``. Here a tag is added
only when the To has none. aiosipua answers INFO 405; some trunks send keys that way
(``application/dtmf-relay``), so in-dialog INFO is answered 200 and handed to ``on_info``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiosipua import SipRequest, SipResponse, SipUAS
from aiosipua.utils import generate_tag

InfoCallback = Callable[[str, SipRequest], None]
"""(Call-ID, the INFO request) for an in-dialog INFO."""


def _reply(request: SipRequest, status: int, reason: str) -> SipResponse:
    """A response copying the routing headers, with one To tag."""
    response = SipResponse(status_code=status, reason_phrase=reason)
    for via in request.headers.get("via"):
        response.headers.append("Via", via)
    for name in ("from", "call-id", "cseq"):
        value = request.headers.get_first(name)
        if value:
            response.headers.set_single(name, value)
    to_value = request.headers.get_first("to")
    if to_value:
        tag = "" if ";tag=" in to_value.replace(" ", "") else f";tag={generate_tag()}"
        response.headers.set_single("To", to_value + tag)
    return response


class TrunkUAS(SipUAS):
    """:class:`~aiosipua.SipUAS` answering OPTIONS and errors with one To tag; INFO taken."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_info: InfoCallback | None = None
        self._handlers["INFO"] = self._handle_info

    def _handle_info(self, request: SipRequest, _addr: tuple[str, int]) -> None:
        call_id = request.call_id or ""
        _call, dialog = self._find_dialog(call_id)
        if dialog is None:
            self._send_error(request, 481, "Call/Transaction Does Not Exist")
            return
        if not self._validate_in_dialog(dialog, request):
            return
        response = _reply(request, 200, "OK")
        self.transport.send_reply(response)
        if self.on_info is not None:
            self.on_info(call_id, request)

    def _send_error(
        self,
        request: SipRequest,
        status_code: int,
        reason: str,
        *,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        response = _reply(request, status_code, reason)
        for name, value in (extra_headers or {}).items():
            response.headers.set_single(name, value)
        if self.user_agent:
            response.headers.set_single("User-Agent", self.user_agent)
        self.transport.send_reply(response)

    def _handle_options(self, request: SipRequest, addr: tuple[str, int]) -> None:
        if self.on_options is not None:
            self.on_options(request, addr)
            return
        response = _reply(request, 200, "OK")
        response.headers.set_single("Allow", ", ".join(self._handlers))
        if self.user_agent:
            response.headers.set_single("User-Agent", self.user_agent)
        self.transport.send_reply(response)
