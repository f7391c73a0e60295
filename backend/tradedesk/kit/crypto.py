"""Broker credentials encrypted at rest: AES-256-GCM, key list for rotation, bound to broker_id."""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# Version 1 authenticated only the broker binding; version 2 also authenticates its own version byte.
# Version 1 is still read, so credentials stored before it stay usable until re-encrypted (rotate-keys).
_V1 = b"\x01"
_V2 = b"\x02"
_VERSION = _V2
_NONCE_BYTES = 12
_TAG_BYTES = 16


class CredentialsDecryptError(Exception):
    """The ciphertext does not open with any configured key for this broker_id."""


def decode_key(text: str) -> bytes:
    """The 32 raw bytes of a base64url encryption key (padding optional); ValueError otherwise."""
    padded = text.strip() + "=" * (-len(text.strip()) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("an encryption key must be 32 bytes, base64url-encoded") from exc
    if len(raw) != 32:
        raise ValueError("an encryption key must be 32 bytes, base64url-encoded")
    return raw


def generate_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii").rstrip("=")


class CredentialCipher:
    """Encrypts with the first key; decrypts with any. The broker_id is the associated data,
    so a ciphertext copied onto another user's record does not open."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._keys = [AESGCM(decode_key(k)) for k in keys]

    def encrypt(self, plaintext: bytes, *, broker_id: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._keys[0].encrypt(nonce, plaintext, _aad(_VERSION, broker_id))
        return base64.urlsafe_b64encode(_VERSION + nonce + sealed).decode("ascii")

    def decrypt(self, token: str, *, broker_id: str) -> bytes:
        version, nonce, sealed = _split(token)
        aad = _aad(version, broker_id)
        for key in self._keys:
            try:
                return key.decrypt(nonce, sealed, aad)
            except InvalidTag:
                continue
        raise CredentialsDecryptError("no configured key opens these credentials")

    def rotate(self, token: str, *, broker_id: str) -> str | None:
        """The same plaintext sealed under the first key in the current format, or None when the token
        already is. Raises CredentialsDecryptError when no configured key opens it."""
        version, nonce, sealed = _split(token)
        if version == _VERSION:
            try:
                self._keys[0].decrypt(nonce, sealed, _aad(version, broker_id))
            except InvalidTag:
                pass
            else:
                return None
        return self.encrypt(self.decrypt(token, broker_id=broker_id), broker_id=broker_id)


def _split(token: str) -> tuple[bytes, bytes, bytes]:
    try:
        blob = base64.urlsafe_b64decode(token.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeError) as exc:
        raise CredentialsDecryptError("malformed ciphertext") from exc
    if len(blob) < 1 + _NONCE_BYTES + _TAG_BYTES:
        raise CredentialsDecryptError("malformed ciphertext")
    version = blob[:1]
    if version not in (_V1, _V2):
        raise CredentialsDecryptError("unknown ciphertext version")
    return version, blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]


def _aad(version: bytes, broker_id: str) -> bytes:
    binding = b"tradedesk:broker:" + broker_id.encode("utf-8")
    return binding if version == _V1 else version + binding
