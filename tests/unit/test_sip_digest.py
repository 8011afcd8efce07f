"""The inbound digest check: credentials are good for the one request they were made for."""

from __future__ import annotations

from aiosipua import SipDigestAuth, SipRequest, parse_auth
from aiosipua.auth import build_credentials
from aiosipua.header_codec import stringify_auth

from transports.sip.trunks import DigestChallenger

SOURCE = "192.0.2.10"
URI = "sip:agent@192.0.2.1"


def _invite(call_id: str, authorization: str, cseq: str = "2 INVITE") -> SipRequest:
    request = SipRequest(method="INVITE", uri=URI)
    request.set_header("Call-ID", call_id)
    request.set_header("CSeq", cseq)
    request.set_header("Authorization", authorization)
    return request


def _authorization(challenger: DigestChallenger, password: str = "s3") -> str:
    challenge = parse_auth(challenger.challenge(SOURCE))
    credentials = build_credentials(SipDigestAuth("trunk", password), challenge, "INVITE", URI)
    assert credentials is not None
    return stringify_auth(credentials)


def test_credentials_pass_for_their_request_and_its_retransmission() -> None:
    challenger = DigestChallenger("trunk", "s3", "callagent")
    authorization = _authorization(challenger)
    assert challenger.verify(_invite("call-1", authorization), SOURCE)
    assert challenger.verify(_invite("call-1", authorization), SOURCE)  # retransmitted


def test_the_same_credentials_on_another_call_are_a_replay() -> None:
    challenger = DigestChallenger("trunk", "s3", "callagent")
    authorization = _authorization(challenger)
    assert challenger.verify(_invite("call-1", authorization), SOURCE)
    assert not challenger.verify(_invite("call-2", authorization), SOURCE)
    assert not challenger.verify(_invite("call-1", authorization, "3 INVITE"), SOURCE)
    assert challenger.verify(_invite("call-2", _authorization(challenger)), SOURCE)  # fresh nonce


def test_a_wrong_password_or_another_source_fails() -> None:
    challenger = DigestChallenger("trunk", "s3", "callagent")
    assert not challenger.verify(_invite("call-1", _authorization(challenger, "wrong")), SOURCE)
    assert not challenger.verify(_invite("call-1", _authorization(challenger)), "192.0.2.99")
