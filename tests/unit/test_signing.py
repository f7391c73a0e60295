"""Cookie signing: rotation by key lists (the first key signs, every key verifies) and tamper refusal."""

from __future__ import annotations

import pytest

from tradedesk.kit.signing import CookieSigner


def test_signer_rotation_first_key_signs_all_verify() -> None:
    old = CookieSigner(["old-secret-0123456789abcdef"], salt="s")
    rotated = CookieSigner(["new-secret-0123456789abcdef", "old-secret-0123456789abcdef"], salt="s")
    issued_before = old.sign("session-id")
    assert rotated.unsign(issued_before, max_age_s=60) == "session-id"
    issued_after = rotated.sign("session-id")
    assert old.unsign(issued_after, max_age_s=60) is None
    assert (
        CookieSigner(["new-secret-0123456789abcdef"], salt="s").unsign(issued_after, max_age_s=60)
        == "session-id"
    )


def test_signer_rejects_tampering_other_salts_and_garbage() -> None:
    signer = CookieSigner(["k" * 32], salt="session")
    signed = signer.sign("abc")
    # Change a character inside the signature (the last one may only carry unused padding bits).
    i = len(signed) - 10
    tampered = signed[:i] + ("A" if signed[i] != "A" else "B") + signed[i + 1 :]
    assert signer.unsign(tampered, max_age_s=60) is None
    assert CookieSigner(["k" * 32], salt="device").unsign(signed, max_age_s=60) is None
    assert signer.unsign("not.a.cookie", max_age_s=60) is None
    assert signer.unsign("é", max_age_s=60) is None


def test_signatures_expire_after_max_age() -> None:
    signer = CookieSigner(["k" * 32], salt="session")
    signed = signer.sign("abc")
    assert signer.unsign(signed, max_age_s=60) == "abc"
    assert signer.unsign(signed, max_age_s=-1) is None


def test_signer_needs_a_key() -> None:
    with pytest.raises(ValueError, match="at least one"):
        CookieSigner([], salt="s")
