"""Cookie signing and credential encryption: rotation by key lists, and ciphertexts bound to their user."""

from __future__ import annotations

import pytest

from tradedesk.kit.crypto import CredentialCipher, CredentialsDecryptError, generate_key
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


def test_cipher_round_trip_rotation_and_binding() -> None:
    old_key, new_key = generate_key(), generate_key()
    sealed = CredentialCipher([old_key]).encrypt(b"token", broker_id="AB1234")
    rotated = CredentialCipher([new_key, old_key])
    assert rotated.decrypt(sealed, broker_id="AB1234") == b"token"
    with pytest.raises(CredentialsDecryptError):
        rotated.decrypt(sealed, broker_id="ZZ9999")  # copied onto another user's record
    with pytest.raises(CredentialsDecryptError):
        CredentialCipher([new_key]).decrypt(sealed, broker_id="AB1234")
    with pytest.raises(CredentialsDecryptError):
        rotated.decrypt("garbage!", broker_id="AB1234")
    assert b"token" not in sealed.encode()


def test_bad_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        CredentialCipher(["c2hvcnQ"])
