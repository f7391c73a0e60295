"""Credential encryption: the first key of a rotated list encrypts, stored formats keep decrypting (test
vectors), the version byte is authenticated, and anything malformed fails closed."""

from __future__ import annotations

import base64
import json

import pytest

from tradedesk.brokers.credentials import BrokerCredentialsPlain, open_credentials, seal_credentials
from tradedesk.kit.crypto import CredentialCipher, CredentialsDecryptError, generate_key

# Test vectors: key bytes 0..31, plaintext below, broker AB1234, fixed nonces. V1 is what every row written
# before the version byte was authenticated holds; V2 is the current format. Both must keep decrypting.
VECTOR_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
VECTOR_PLAINTEXT = b'{"api_key": "tradedesk-demo", "access_token": "vector-token"}'
VECTOR_V1 = (
    "AWRlZmdoaWprbG1ubzM5vxYQtj37R0BlyPgRGJwmp2Jv-AfeFsK8w2rXg4cp94olsz9N72uWlhYdx2LouX447IhSZzVHkZTC9JKpIz7_"
    "y-Wo4YRvaY3eyO47"
)
VECTOR_V2 = (
    "AsjJysvMzc7P0NHS02paAKvvk5BFDR4lnjxymXWE4ojNdwCFQIjEVMP2sYmIr-9P1eFAXsVZmiqFijcjlrrSb9f2IIN_cH0ot9x55_"
    "kV6oe2djdhaQFqYnvh"
)


def blob(token: str) -> bytes:
    return base64.urlsafe_b64decode(token)


def token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


@pytest.mark.parametrize("vector", [VECTOR_V1, VECTOR_V2], ids=["v1", "v2"])
def test_known_ciphertexts_decrypt(vector: str) -> None:
    cipher = CredentialCipher([generate_key(), VECTOR_KEY])  # found with a later key of the list too
    assert cipher.decrypt(vector, broker_id="AB1234") == VECTOR_PLAINTEXT
    with pytest.raises(CredentialsDecryptError):
        cipher.decrypt(vector, broker_id="AB1235")


def test_new_ciphertexts_use_the_current_version_and_layout() -> None:
    sealed = blob(CredentialCipher([VECTOR_KEY]).encrypt(VECTOR_PLAINTEXT, broker_id="AB1234"))
    assert sealed[0] == 2
    assert len(sealed) == 1 + 12 + len(VECTOR_PLAINTEXT) + 16
    assert VECTOR_PLAINTEXT not in sealed


def test_the_first_key_of_a_rotated_list_encrypts() -> None:
    first, second = generate_key(), generate_key()
    sealed = CredentialCipher([first, second]).encrypt(b"token", broker_id="AB1234")
    assert CredentialCipher([first]).decrypt(sealed, broker_id="AB1234") == b"token"
    with pytest.raises(CredentialsDecryptError):
        CredentialCipher([second]).decrypt(sealed, broker_id="AB1234")


def test_round_trip_rotation_and_binding() -> None:
    old_key, new_key = generate_key(), generate_key()
    sealed = CredentialCipher([old_key]).encrypt(b"token", broker_id="AB1234")
    rotated = CredentialCipher([new_key, old_key])
    assert rotated.decrypt(sealed, broker_id="AB1234") == b"token"
    with pytest.raises(CredentialsDecryptError):
        rotated.decrypt(sealed, broker_id="ZZ9999")  # copied onto another user's record
    with pytest.raises(CredentialsDecryptError):
        CredentialCipher([new_key]).decrypt(sealed, broker_id="AB1234")
    assert b"token" not in sealed.encode()


def test_nonces_are_fresh() -> None:
    cipher = CredentialCipher([generate_key()])
    assert len({cipher.encrypt(b"same", broker_id="AB1234") for _ in range(20)}) == 20


@pytest.mark.parametrize(
    "tampered",
    [
        pytest.param(token(blob(VECTOR_V2)[:28]), id="shorter-than-version-nonce-and-tag"),
        # Cut inside the nonce: the guard must answer before AES-GCM sees a nonce of the wrong size.
        pytest.param(token(blob(VECTOR_V2)[:1]), id="version-only"),
        pytest.param(token(blob(VECTOR_V2)[:2]), id="one-nonce-byte"),
        pytest.param(token(blob(VECTOR_V2)[:5]), id="four-nonce-bytes"),
        pytest.param(token(blob(VECTOR_V2)[:13]), id="version-and-nonce-only"),
        pytest.param("", id="empty"),
        pytest.param(token(b"\x03" + blob(VECTOR_V2)[1:]), id="unknown-version"),
        pytest.param(token(b"\x00" + blob(VECTOR_V2)[1:]), id="version-zero"),
        # v2 bytes presented as v1: without the version in the associated data this downgrade would open.
        pytest.param(token(b"\x01" + blob(VECTOR_V2)[1:]), id="v2-relabelled-v1"),
        pytest.param(token(b"\x02" + blob(VECTOR_V1)[1:]), id="v1-relabelled-v2"),
        pytest.param(VECTOR_V2[:-4] + ("AAAA" if VECTOR_V2[-4:] != "AAAA" else "BBBB"), id="tag-changed"),
        pytest.param("not base64!", id="not-base64"),
        pytest.param("é", id="not-ascii"),
    ],
)
def test_malformed_or_tampered_ciphertexts_fail_closed(tampered: str) -> None:
    with pytest.raises(CredentialsDecryptError):
        CredentialCipher([VECTOR_KEY]).decrypt(tampered, broker_id="AB1234")


@pytest.mark.parametrize("length", [1, 13, 20, 28])
def test_anything_shorter_than_version_nonce_and_tag_is_malformed(length: int) -> None:
    """Refused by the length guard itself, not left to AES-GCM (which would call it a key mismatch)."""
    with pytest.raises(CredentialsDecryptError, match="malformed"):
        CredentialCipher([VECTOR_KEY]).decrypt(token(blob(VECTOR_V2)[:length]), broker_id="AB1234")


def test_the_shortest_well_formed_ciphertext_opens() -> None:
    """The length guard stops at version + nonce + tag: an empty plaintext is still a valid ciphertext."""
    cipher = CredentialCipher([VECTOR_KEY])
    sealed = cipher.encrypt(b"", broker_id="AB1234")
    assert len(blob(sealed)) == 1 + 12 + 16
    assert cipher.decrypt(sealed, broker_id="AB1234") == b""


def test_rotate_re_encrypts_old_keys_and_versions_only() -> None:
    old_key, new_key = generate_key(), VECTOR_KEY
    rotated = CredentialCipher([new_key, old_key])
    under_old = CredentialCipher([old_key]).encrypt(b"token", broker_id="AB1234")
    fresh = rotated.rotate(under_old, broker_id="AB1234")
    assert fresh is not None and fresh != under_old
    assert CredentialCipher([new_key]).decrypt(fresh, broker_id="AB1234") == b"token"
    assert rotated.rotate(fresh, broker_id="AB1234") is None  # already current
    upgraded = rotated.rotate(VECTOR_V1, broker_id="AB1234")  # right key, legacy format
    assert upgraded is not None and blob(upgraded)[0] == 2
    assert CredentialCipher([new_key]).decrypt(upgraded, broker_id="AB1234") == VECTOR_PLAINTEXT
    with pytest.raises(CredentialsDecryptError):
        rotated.rotate(under_old, broker_id="ZZ9999")


def test_bad_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        CredentialCipher(["c2hvcnQ"])
    # AES-GCM itself would take 16- and 24-byte keys; ours are 256-bit only, and never longer.
    for size in (16, 24, 33, 48):
        with pytest.raises(ValueError, match="32 bytes"):
            CredentialCipher([base64.urlsafe_b64encode(bytes(size)).decode().rstrip("=")])
    with pytest.raises(ValueError, match="32 bytes"):
        CredentialCipher(["not base64 at all!"])
    with pytest.raises(ValueError, match="32 bytes"):
        CredentialCipher(["\u00e9" * 43])  # not even ASCII: base64 raises a plain ValueError there
    with pytest.raises(ValueError, match="at least one"):
        CredentialCipher([])


class TestCredentialsDecoder:
    cipher = CredentialCipher([VECTOR_KEY])

    def test_round_trip(self) -> None:
        plain = BrokerCredentialsPlain(api_key="k", access_token="t")
        sealed = seal_credentials(self.cipher, plain, broker_id="AB1234")
        assert open_credentials(self.cipher, sealed, broker_id="AB1234") == plain
        assert open_credentials(self.cipher, VECTOR_V1, broker_id="AB1234") == BrokerCredentialsPlain(
            api_key="tradedesk-demo", access_token="vector-token"
        )

    @pytest.mark.parametrize(
        "payload",
        [b"not json", b"\xff\xfe", b'["api_key", "access_token"]', b'"text"', b'{"api_key": "k"}', b"null"],
    )
    def test_well_keyed_payloads_of_the_wrong_shape_fail_closed(self, payload: bytes) -> None:
        sealed = self.cipher.encrypt(payload, broker_id="AB1234")
        with pytest.raises(CredentialsDecryptError):
            open_credentials(self.cipher, sealed, broker_id="AB1234")

    def test_someone_elses_ciphertext_fails_closed(self) -> None:
        sealed = seal_credentials(self.cipher, BrokerCredentialsPlain("k", "t"), broker_id="AB1234")
        with pytest.raises(CredentialsDecryptError):
            open_credentials(self.cipher, sealed, broker_id="ZZ9999")

    def test_payload_fields_are_read_as_text(self) -> None:
        payload = json.dumps({"api_key": 7, "access_token": "t", "extra": 1}).encode()
        sealed = self.cipher.encrypt(payload, broker_id="AB1234")
        assert open_credentials(self.cipher, sealed, broker_id="AB1234") == BrokerCredentialsPlain("7", "t")
