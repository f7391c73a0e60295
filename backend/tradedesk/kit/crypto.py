"""Broker credentials encrypted at rest: AES-256-GCM, key list for rotation, bound to broker_id."""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"
_NONCE_BYTES = 12


class CredentialsDecryptError(Exception):
    """The ciphertext does not open with any configured key for this broker_id."""


def _decode_key(text: str) -> bytes:
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
        self._keys = [AESGCM(_decode_key(k)) for k in keys]

    def encrypt(self, plaintext: bytes, *, broker_id: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._keys[0].encrypt(nonce, plaintext, _aad(broker_id))
        return base64.urlsafe_b64encode(_VERSION + nonce + sealed).decode("ascii")

    def decrypt(self, token: str, *, broker_id: str) -> bytes:
        try:
            blob = base64.urlsafe_b64decode(token.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeError) as exc:
            raise CredentialsDecryptError("malformed ciphertext") from exc
        if len(blob) < 1 + _NONCE_BYTES + 16 or blob[:1] != _VERSION:
            raise CredentialsDecryptError("malformed ciphertext")
        nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        for key in self._keys:
            try:
                return key.decrypt(nonce, sealed, _aad(broker_id))
            except InvalidTag:
                continue
        raise CredentialsDecryptError("no configured key opens these credentials")


def _aad(broker_id: str) -> bytes:
    return b"tradedesk:broker:" + broker_id.encode("utf-8")
