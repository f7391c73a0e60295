"""A broker account's credentials, and the one codec that seals them at rest (AES-GCM bound to the
broker_id) and opens them again: sessions, the per-account credentials row, sync and agents all use it."""

from __future__ import annotations

import json
from dataclasses import dataclass

from tradedesk.kit.crypto import CredentialCipher, CredentialsDecryptError


@dataclass(frozen=True, slots=True)
class BrokerCredentialsPlain:
    api_key: str
    access_token: str


def seal_credentials(cipher: CredentialCipher, credentials: BrokerCredentialsPlain, *, broker_id: str) -> str:
    plain = json.dumps({"api_key": credentials.api_key, "access_token": credentials.access_token})
    return cipher.encrypt(plain.encode("utf-8"), broker_id=broker_id)


def open_credentials(cipher: CredentialCipher, ciphertext: str, *, broker_id: str) -> BrokerCredentialsPlain:
    """The one credentials decoder. Raises CredentialsDecryptError when no configured key opens the
    ciphertext for this broker_id, or what it holds is not a credentials object."""
    try:
        data = json.loads(cipher.decrypt(ciphertext, broker_id=broker_id))
        return BrokerCredentialsPlain(api_key=str(data["api_key"]), access_token=str(data["access_token"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise CredentialsDecryptError("the credentials do not have the expected shape") from exc
