"""Signed cookie values (itsdangerous) with a key list: the first key signs, every key verifies."""

from __future__ import annotations

import hashlib
import time

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from itsdangerous.encoding import want_bytes


class _CachedKeySigner(TimestampSigner):
    """Derives each secret's signing key once instead of on every cookie (the session hot path)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._derived: dict[bytes, bytes] = {}

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        secret = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        derived = self._derived.get(secret)
        if derived is None:
            derived = self._derived[secret] = super().derive_key(secret)
        return derived


class CookieSigner:
    def __init__(self, secret_keys: list[str], *, salt: str, remember: int = 10_000) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is needed")
        # itsdangerous signs with the *last* key of a list; ours signs with the first.
        self._signer = _CachedKeySigner(list(reversed(secret_keys)), salt=salt, digest_method=hashlib.sha256)
        # Values whose signature already verified, with when they were signed: a browser sends the same
        # cookie on every request, and its age is all that can change.
        self._verified: dict[str, tuple[str, float]] = {}
        self._remember = remember

    def sign(self, value: str) -> str:
        return self._signer.sign(value).decode("ascii")

    def unsign(self, signed: str, *, max_age_s: int) -> str | None:
        """The original value, or None when the signature is bad, stale or malformed."""
        known = self._verified.get(signed)
        if known is not None:
            value, signed_at = known
            return value if time.time() - signed_at <= max_age_s else None
        try:
            raw, stamp = self._signer.unsign(signed, max_age=max_age_s, return_timestamp=True)
            value = raw.decode("ascii")
        except (BadSignature, SignatureExpired, UnicodeError, ValueError):
            return None
        if len(self._verified) >= self._remember:
            del self._verified[next(iter(self._verified))]
        self._verified[signed] = (value, stamp.timestamp())
        return value
