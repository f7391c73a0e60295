"""Settings: list parsing and the production guard that refuses unsafe deployments."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from tradedesk.config import Settings
from tradedesk.kit.crypto import generate_key

SAFE = {
    "env": "production",
    "secret_keys": ["x" * 40],
    "encryption_keys": [generate_key()],
    "cors_origins": ["https://app.example.com"],
    "cookie_secure": True,
}


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_safe_production_settings_start() -> None:
    loaded = settings(**SAFE)
    assert loaded.session_cookie_name == "__Host-tradedesk"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"secret_keys": []}, "SECRET_KEYS"),
        ({"encryption_keys": []}, "ENCRYPTION_KEYS"),
        ({"cookie_secure": False}, "COOKIE_SECURE"),
        ({"cors_origins": ["*"]}, "'*'"),
        ({"cors_origins": []}, "CORS_ORIGINS"),
        ({"secret_keys": ["short"]}, "32 characters"),
    ],
)
def test_production_refuses_unsafe_settings(change: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError) as raised:
        settings(**{**SAFE, **change})
    assert words in str(raised.value)
    assert "x" * 40 not in str(raised.value)  # secrets never echoed


def test_samesite_none_needs_secure_cookies() -> None:
    with pytest.raises(ValidationError, match="SAMESITE=none"):
        settings(cookie_samesite="none", cookie_secure=False)


def test_lists_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEDESK_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("TRADEDESK_SECRET_KEYS", '["new-key-0123456789", "old-key-0123456789"]')
    loaded = settings()
    assert loaded.cors_origins == ["https://a.example", "https://b.example"]
    assert loaded.effective_secret_keys == ["new-key-0123456789", "old-key-0123456789"]


def test_the_api_refuses_to_start_without_production_secrets() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tradedesk", "--port", "1"],
        env={"PATH": "/usr/bin:/bin", "TRADEDESK_ENV": "production"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to start" in result.stderr and "SECRET_KEYS" in result.stderr


class TestDemoMarket:
    """`make run`'s simulated market is open when the demo starts."""

    @pytest.mark.parametrize(
        ("now_ist", "expected"),
        [
            ("2026-12-07T11:00", None),  # Monday in session: real time
            ("2026-12-07T08:00", "2026-12-07T09:20"),  # Monday before the open: today
            ("2026-12-07T16:00", "2026-12-08T09:20"),  # Monday after the close: Tuesday
            ("2026-12-11T18:00", "2026-12-14T09:20"),  # Friday evening: Monday
            ("2026-12-12T11:00", "2026-12-14T09:20"),  # Saturday: Monday
        ],
    )
    def test_starts_at_the_next_session(self, now_ist: str, expected: str | None) -> None:
        from datetime import datetime
        from zoneinfo import ZoneInfo

        from tradedesk.devrun import demo_market_start

        ist = ZoneInfo("Asia/Kolkata")
        found = demo_market_start(datetime.fromisoformat(now_ist).replace(tzinfo=ist))
        assert (found.replace(tzinfo=None).isoformat(timespec="minutes") if found else None) == expected
