"""The one token signer (integrations/signed_tokens.py): claims, purpose, expiry."""

from __future__ import annotations

import pytest

from integrations.signed_tokens import SignedTokenError, TokenSigner

SECRET = "a-shared-secret-for-tests"


def test_a_token_verifies_only_for_its_claims_purpose_and_lifetime() -> None:
    now = [1_000_000.0]
    signer = TokenSigner(SECRET, "purpose/v1", ttl_s=60, clock=lambda: now[0])
    issued = signer.issue(["a", "b.c"])
    assert issued.expires_at == 1_000_060 and issued.token.startswith("1000060.")
    assert signer.verify(issued.token, ["a", "b.c"]) == 1_000_060
    other_purpose = TokenSigner(SECRET, "purpose/v2", ttl_s=60, clock=lambda: now[0])
    for token, claims, signer_used, reason in (
        (issued.token, ["a.b", "c"], signer, "mismatch"),  # claims are not concatenated
        (issued.token, ["a", "b.c"], other_purpose, "mismatch"),
        ("garbage", ["a", "b.c"], signer, "malformed"),
        ("１２." + issued.token.split(".")[1], ["a", "b.c"], signer, "malformed"),
    ):
        with pytest.raises(SignedTokenError) as refused:
            signer_used.verify(token, claims)
        assert refused.value.reason == reason
    now[0] += 60
    with pytest.raises(SignedTokenError, match="expired"):
        signer.verify(issued.token, ["a", "b.c"])
    assert signer.fingerprint("x") != signer.fingerprint("y") != other_purpose.fingerprint("y")
