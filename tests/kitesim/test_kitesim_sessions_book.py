"""The token book on its own: lifetimes and how long spent tokens are remembered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from kitesim.accounts import DemoApp
from kitesim.errors import TokenError
from kitesim.sessions import SessionBook, session_checksum

APP = DemoApp(api_key="k", api_secret=SecretStr("s"), redirect_url="http://app.test/cb")
NOW = datetime(2025, 1, 6, 3, 45, tzinfo=UTC)


def redeem(book: SessionBook, token: str, now: datetime) -> None:
    checksum = session_checksum(api_key="k", request_token=token, api_secret="s")
    book.redeem_request_token(app=APP, request_token=token, checksum=checksum, now=now)


def test_checksum_is_sha256_hex_of_key_token_secret() -> None:
    assert session_checksum(api_key="a", request_token="b", api_secret="c") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    )


def test_request_token_ttl_boundary() -> None:
    book = SessionBook(request_token_ttl_s=300)
    token = book.issue_request_token(api_key="k", user_id="DEMO01", now=NOW).token
    redeem(book, token, NOW + timedelta(seconds=300))
    late = book.issue_request_token(api_key="k", user_id="DEMO01", now=NOW).token
    with pytest.raises(TokenError, match="expired"):
        redeem(book, late, NOW + timedelta(seconds=300.001))


def test_old_request_tokens_are_forgotten() -> None:
    book = SessionBook(request_token_ttl_s=300)
    old = book.issue_request_token(api_key="k", user_id="DEMO01", now=NOW).token
    book.issue_request_token(api_key="k", user_id="DEMO01", now=NOW + timedelta(days=2))
    assert old not in book.request_tokens
    with pytest.raises(TokenError, match="invalid"):
        redeem(book, old, NOW + timedelta(days=2))


def test_expired_access_token_says_expired_for_a_day_then_is_forgotten() -> None:
    book = SessionBook(request_token_ttl_s=300)
    token = book.issue_access_token(api_key="k", user_id="DEMO01", now=NOW)
    with pytest.raises(TokenError, match="has expired"):
        book.resolve_access_token(api_key="k", access_token=token.access_token, now=token.expires_at)
    book.issue_access_token(
        api_key="k", user_id="DEMO02", now=token.expires_at + timedelta(days=1, seconds=1)
    )
    with pytest.raises(TokenError, match="Incorrect"):
        book.resolve_access_token(api_key="k", access_token=token.access_token, now=token.expires_at)


def test_valid_access_tokens_are_never_forgotten() -> None:
    book = SessionBook(request_token_ttl_s=300)
    token = book.issue_access_token(api_key="k", user_id="DEMO01", now=NOW)
    later = token.expires_at - timedelta(seconds=1)
    book.issue_access_token(api_key="k", user_id="DEMO02", now=later)
    assert book.resolve_access_token(api_key="k", access_token=token.access_token, now=later) is token
