"""Sending BYE and REFER on one dialog (the :class:`~transports.sip.call.CallSignalling` impl)."""

from __future__ import annotations

from collections.abc import Callable

from aiosipua import Dialog, DialogState, IncomingCall, SipUAC


class DialogSignalling:
    """BYE / REFER on a confirmed dialog, inbound (aiosipua's UAS) or outbound (its UAC).

    Args:
        uac: Sends the in-dialog requests.
        dialog: The dialog.
        remote: Where in-dialog requests go (the trunk's signalling address).
        incoming: For an inbound call, aiosipua's record (its 200 retransmission and session
            timer stop on our BYE).
    """

    def __init__(
        self,
        uac: SipUAC,
        dialog: Dialog,
        remote: tuple[str, int],
        incoming: IncomingCall | None = None,
    ) -> None:
        self._uac = uac
        self._dialog = dialog
        self._remote = remote
        self._incoming = incoming
        self.on_bye_sent: Callable[[], object] | None = None

    def send_bye(self) -> None:
        """Send BYE (nothing when the dialog is no longer confirmed)."""
        if self._incoming is not None:
            self._incoming._stop_retransmissions()
        if self._dialog.state == DialogState.CONFIRMED:
            self._uac.send_bye(self._dialog, self._remote)
        if self.on_bye_sent is not None:
            self.on_bye_sent()

    def send_refer(self, target: str) -> None:
        """Send REFER; a bare number becomes ``sip:<number>@<the trunk's host>``."""
        uri = (
            target
            if target.lower().startswith(("sip:", "sips:", "tel:"))
            else (f"sip:{target}@{self._remote[0]}")
        )
        self._uac.send_refer(self._dialog, uri, self._remote)
