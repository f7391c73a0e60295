"""Keys when none are configured: a per-install key file (private from the first byte, reused, refused when
unsafe) and never a key published with the code."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from tradedesk.config import Settings
from tradedesk.kit.crypto import CredentialCipher, generate_key
from tradedesk.kit.keys import KeyFileError, load_or_create_key_file

# The development keys earlier versions shipped in config.py; they must never sign or encrypt anything.
PUBLISHED_SECRET_KEY = "dev-only-secret-key-change-me"
PUBLISHED_ENCRYPTION_KEY = "ZGV2LW9ubHktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM"


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class TestKeyFile:
    def test_first_run_creates_a_private_file_and_later_runs_reuse_it(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        path = tmp_path / "keys.json"
        with caplog.at_level(logging.INFO, logger="tradedesk.keys"):
            created = load_or_create_key_file(path)
            again = load_or_create_key_file(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert again.secret_keys == created.secret_keys and again.encryption_keys == created.encryption_keys
        assert len(created.secret_keys[0]) >= 32
        CredentialCipher(created.encryption_keys)  # valid AES keys
        assert load_or_create_key_file(tmp_path / "other.json").secret_keys != created.secret_keys
        lines = [r for r in caplog.records if str(path) in r.getMessage()]
        assert len(lines) == 1 and lines[0].levelno == logging.WARNING  # said once, where it is
        assert "TRADEDESK_ENCRYPTION_KEYS" in lines[0].getMessage()  # several instances: set keys explicitly
        for secret in [*created.secret_keys, *created.encryption_keys]:
            assert secret not in caplog.text
        assert {p.name for p in tmp_path.iterdir()} == {"keys.json", "other.json"}  # no scratch files

    def test_a_permissive_umask_still_gives_a_private_file(self, tmp_path: Path) -> None:
        previous = os.umask(0)
        try:
            load_or_create_key_file(tmp_path / "keys.json")
        finally:
            os.umask(previous)
        assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600

    def test_missing_directories_are_created_private(self, tmp_path: Path) -> None:
        load_or_create_key_file(tmp_path / "state" / "keys.json")
        assert stat.S_IMODE((tmp_path / "state").stat().st_mode) & 0o077 == 0

    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602])
    def test_a_file_others_can_read_or_write_is_refused(self, tmp_path: Path, mode: int) -> None:
        path = tmp_path / "keys.json"
        load_or_create_key_file(path)
        path.chmod(mode)
        with pytest.raises(KeyFileError, match="other users"):
            load_or_create_key_file(path)

    @pytest.mark.parametrize(
        "content",
        [
            b"",
            b"not json",
            b"[]",
            b'{"secret_keys": ["' + b"s" * 40 + b'"]}',
            b'{"secret_keys": [], "encryption_keys": ["' + generate_key().encode() + b'"]}',
            b'{"secret_keys": ["short"], "encryption_keys": ["' + generate_key().encode() + b'"]}',
            b'{"secret_keys": ["' + b"s" * 40 + b'"], "encryption_keys": ["c2hvcnQ"]}',
            b'{"secret_keys": "' + b"s" * 40 + b'", "encryption_keys": ["' + generate_key().encode() + b'"]}',
            b'{"secret_keys": [7], "encryption_keys": ["' + generate_key().encode() + b'"]}',
        ],
    )
    def test_an_invalid_file_is_refused_not_replaced(self, tmp_path: Path, content: bytes) -> None:
        path = tmp_path / "keys.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, content)
        os.close(fd)
        with pytest.raises(KeyFileError, match="not a valid"):
            load_or_create_key_file(path)
        assert path.read_bytes() == content

    def test_a_directory_in_its_place_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "keys.json").mkdir(mode=0o700)
        with pytest.raises(KeyFileError):
            load_or_create_key_file(tmp_path / "keys.json")

    def test_an_unusable_place_is_reported(self, tmp_path: Path) -> None:
        if os.geteuid() == 0:
            blocker = tmp_path / "file"
            blocker.write_text("")
            target = blocker / "keys.json"  # a path under a regular file cannot be created, even by root
        else:
            locked = tmp_path / "locked"
            locked.mkdir(mode=0o500)
            target = locked / "keys.json"
        with pytest.raises(KeyFileError) as raised:
            load_or_create_key_file(target)
        assert str(target) in str(raised.value)

    def test_concurrent_first_runs_agree_on_one_set_of_keys(self, tmp_path: Path) -> None:
        path = tmp_path / "keys.json"
        script = (
            "import json, sys; from tradedesk.kit.keys import load_or_create_key_file as f; "
            "k = f(sys.argv[1]); print(json.dumps([k.secret_keys, k.encryption_keys]))"
        )
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for _ in range(8)
        ]
        results = {p.communicate(timeout=60)[0] for p in procs}
        assert all(p.returncode == 0 for p in procs)
        on_disk = json.loads(path.read_text())
        assert [json.loads(r) for r in results] == [[on_disk["secret_keys"], on_disk["encryption_keys"]]]


class TestSettingsKeys:
    def test_development_without_keys_uses_the_key_file(self, tmp_path: Path) -> None:
        path = tmp_path / "keys.json"
        loaded = settings(key_file=str(path))
        assert not path.exists()  # nothing is written until keys are needed
        secret, encryption = loaded.effective_secret_keys, loaded.effective_encryption_keys
        on_disk = json.loads(path.read_text())
        assert secret == on_disk["secret_keys"] and encryption == on_disk["encryption_keys"]
        assert PUBLISHED_SECRET_KEY not in secret and PUBLISHED_ENCRYPTION_KEY not in encryption
        restarted = settings(key_file=str(path))
        assert restarted.effective_secret_keys == secret
        assert restarted.effective_encryption_keys == encryption

    def test_configured_keys_win_and_no_file_is_written(self, tmp_path: Path) -> None:
        path = tmp_path / "keys.json"
        key = generate_key()
        loaded = settings(key_file=str(path), secret_keys=["s" * 40], encryption_keys=[key])
        assert loaded.effective_secret_keys == ["s" * 40]
        assert loaded.effective_encryption_keys == [key]
        assert not path.exists()

    def test_the_key_file_follows_the_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TRADEDESK_KEY_FILE", str(tmp_path / "from-env.json"))
        settings().effective_encryption_keys  # noqa: B018
        assert (tmp_path / "from-env.json").exists()

    @pytest.mark.parametrize(
        "values",
        [
            {"secret_keys": [PUBLISHED_SECRET_KEY]},
            {"secret_keys": ["s" * 40, PUBLISHED_SECRET_KEY]},
            {"encryption_keys": [PUBLISHED_ENCRYPTION_KEY]},
            {"encryption_keys": [PUBLISHED_ENCRYPTION_KEY + "="]},
            {"encryption_keys": [" " + PUBLISHED_ENCRYPTION_KEY]},
        ],
    )
    @pytest.mark.parametrize("env", ["development", "production"])
    def test_published_development_keys_are_refused_everywhere(
        self, values: dict[str, object], env: str
    ) -> None:
        with pytest.raises(ValidationError, match="published") as raised:
            settings(env=env, **values)
        assert PUBLISHED_SECRET_KEY not in str(raised.value)

    def test_production_never_falls_back_to_a_key_file(self, tmp_path: Path) -> None:
        with pytest.raises(ValidationError, match="ENCRYPTION_KEYS must be set"):
            settings(
                env="production",
                secret_keys=["x" * 40],
                cors_origins=["https://app.example.com"],
                cookie_secure=True,
                key_file=str(tmp_path / "keys.json"),
            )
        assert not (tmp_path / "keys.json").exists()

    def test_the_api_reports_an_unsafe_key_file_and_does_not_start(self, tmp_path: Path) -> None:
        path = tmp_path / "keys.json"
        load_or_create_key_file(path)
        path.chmod(0o644)
        result = subprocess.run(
            [sys.executable, "-c", "from tradedesk.main import create_app; create_app()"],
            env={
                "PATH": "/usr/bin:/bin",
                "TRADEDESK_KEY_FILE": str(path),
                "TRADEDESK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
            },
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert result.returncode != 0
        assert "KeyFileError" in result.stderr and "other users" in result.stderr
