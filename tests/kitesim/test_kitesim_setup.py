"""Settings, demo accounts, the app factory and the ``python -m kitesim`` command line."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI

from kitesim.__main__ import build_parser, settings_from_args
from kitesim.accounts import DEMO_USERS, demo_accounts
from kitesim.app import create_app
from kitesim.clock import SimClock
from kitesim.config import KitesimSettings
from kitesim.sessions import SessionBook
from kitesim.state import SimState


class TestSettings:
    def test_defaults(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in (
            "REDIRECT_URL",
            "API_KEY",
            "API_SECRET",
            "REQUEST_TOKEN_TTL_S",
            "SPEED",
            "SEED",
            "START_AT",
        ):
            monkeypatch.delenv(f"KITESIM_{name}", raising=False)
        settings = KitesimSettings(_env_file=None)
        assert settings.redirect_url == "http://127.0.0.1:8000/api/auth/callback"
        assert settings.api_key == "tradedesk-demo"
        assert settings.api_secret.get_secret_value() == "tradedesk-demo-secret"
        assert "tradedesk-demo-secret" not in repr(settings)
        assert settings.request_token_ttl_s == 300
        assert settings.speed == 1.0
        assert settings.seed == 7
        assert settings.start_at is None

    def test_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("KITESIM_REDIRECT_URL", "http://api.test/api/auth/callback")
        monkeypatch.setenv("KITESIM_SPEED", "60")
        monkeypatch.setenv("KITESIM_START_AT", "2025-01-06T09:15:00+05:30")
        settings = KitesimSettings(_env_file=None)
        assert settings.redirect_url == "http://api.test/api/auth/callback"
        assert settings.speed == 60
        assert settings.start_at == datetime(2025, 1, 6, 3, 45, tzinfo=UTC)

    @pytest.mark.parametrize(
        "overrides",
        [
            {"speed": 0},
            {"speed": 10001},
            {"redirect_url": "not a url"},
            {"start_at": "2025-01-06T09:15:00"},
            {"request_token_ttl_s": 0},
        ],
    )
    def test_nonsense_is_refused(self, overrides: dict[str, Any]) -> None:
        with pytest.raises(ValueError):
            KitesimSettings(_env_file=None, **overrides)


class TestDemoAccounts:
    def test_five_distinct_users(self) -> None:
        assert [u.user_id for u in DEMO_USERS] == ["DEMO01", "DEMO02", "DEMO03", "DEMO04", "DEMO05"]
        for attribute in ("user_name", "user_shortname", "email", "starting_margin_inr"):
            assert len({getattr(u, attribute) for u in DEMO_USERS}) == 5, attribute
        assert all(isinstance(u.starting_margin_inr, Decimal) for u in DEMO_USERS)
        assert all(u.starting_margin_inr > 0 for u in DEMO_USERS)

    def test_password_is_demo_and_not_in_repr(self) -> None:
        accounts = demo_accounts(KitesimSettings(_env_file=None))
        assert accounts.authenticate(user_id="DEMO03", password="demo") is not None
        assert accounts.authenticate(user_id="DEMO03", password="Demo") is None
        assert "password" not in repr(DEMO_USERS[0])

    def test_app_comes_from_settings(self) -> None:
        settings = KitesimSettings(_env_file=None, api_key="k1", redirect_url="http://x.test/cb")
        app = demo_accounts(settings).app_for("k1")
        assert app is not None
        assert app.redirect_url == "http://x.test/cb"
        assert app.api_secret == settings.api_secret


def test_create_app_puts_state_on_app_state(settings: KitesimSettings) -> None:
    app = create_app(settings)
    assert isinstance(app, FastAPI)
    sim = app.state.sim
    assert isinstance(sim, SimState)
    assert isinstance(sim.clock, SimClock)
    assert isinstance(sim.sessions, SessionBook)
    assert sim.settings is settings
    assert set(sim.accounts.users) == {"DEMO01", "DEMO02", "DEMO03", "DEMO04", "DEMO05"}


def test_same_seed_same_random_stream(settings: KitesimSettings) -> None:
    first, second = create_app(settings).state.sim, create_app(settings).state.sim
    assert first.rng.random() == second.rng.random()


class TestCommandLine:
    def test_flags_override_settings(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("KITESIM_SPEED", "5")
        args = build_parser().parse_args(
            ["--port", "8123", "--speed", "120", "--seed", "11", "--redirect-url", "http://api.test/cb"]
        )
        settings = settings_from_args(args)
        assert (args.host, args.port) == ("127.0.0.1", 8123)
        assert settings.speed == 120
        assert settings.seed == 11
        assert settings.redirect_url == "http://api.test/cb"

    def test_unset_flags_leave_settings_alone(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("KITESIM_SPEED", "5")
        settings = settings_from_args(build_parser().parse_args([]))
        assert settings.speed == 5

    def test_bad_flag_value_exits_with_usage(self, capsys: pytest.CaptureFixture[str]) -> None:
        from kitesim.__main__ import main

        with pytest.raises(SystemExit) as exit_info:
            main(["--speed", "-1"])
        assert exit_info.value.code == 2
        assert "speed" in capsys.readouterr().err
