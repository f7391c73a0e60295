"""Per-install keys for a setup with none configured: generated once into a private key file, then reused."""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from tradedesk.kit.crypto import decode_key, generate_key

log = logging.getLogger("tradedesk.keys")

_MIN_SECRET_KEY_CHARS = 32
_announced: set[Path] = set()


class KeyFileError(Exception):
    """The key file cannot be used: unsafe permissions, not ours, or not a valid key file."""


@dataclass(frozen=True, slots=True)
class InstallKeys:
    path: Path
    secret_keys: list[str]
    encryption_keys: list[str]


def load_or_create_key_file(path: str | os.PathLike[str]) -> InstallKeys:
    """The keys in ``path``, creating it (mode 0600, atomically) with fresh random keys when absent.

    Several processes starting at once end up with the same keys: the file appears under its name
    only once it is complete, and whoever comes second reads the first one's file."""
    target = Path(path).expanduser().absolute()
    try:
        keys = _read(target)
    except FileNotFoundError:
        try:
            keys = _create(target)
        except FileExistsError:
            keys = _read_existing(target)
        else:
            _announce(keys, created=True)
            return keys
    _announce(keys, created=False)
    return keys


def _read_existing(target: Path) -> InstallKeys:
    try:
        return _read(target)
    except FileNotFoundError as exc:
        raise KeyFileError(f"the key file {target} is a dangling link") from exc


def _announce(keys: InstallKeys, *, created: bool) -> None:
    if keys.path in _announced:
        return
    _announced.add(keys.path)
    advice = (
        "Keep it private and keep it with the database: without it every session ends and stored broker "
        "credentials cannot be decrypted. Several API processes or hosts sharing a database must all set "
        "TRADEDESK_SECRET_KEYS and TRADEDESK_ENCRYPTION_KEYS explicitly (production requires it)."
    )
    if created:
        log.warning("generated per-install keys in %s (mode 0600). %s", keys.path, advice)
    else:
        log.info("using per-install keys from %s. %s", keys.path, advice)


def _create(target: Path) -> InstallKeys:
    keys = InstallKeys(
        path=target,
        secret_keys=[secrets.token_urlsafe(48)],
        encryption_keys=[generate_key()],
    )
    body = json.dumps(
        {"secret_keys": keys.secret_keys, "encryption_keys": keys.encryption_keys}, indent=2
    ).encode("utf-8")
    # Written in full under a private temporary name (created 0600, so never readable by others), then
    # hard-linked to the real name: link() never replaces an existing file, and no reader sees half a file.
    scratch = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        scratch.unlink(missing_ok=True)
        raise _cannot_create(target, exc) from exc
    try:
        os.link(scratch, target)  # FileExistsError: another process was first
    except FileExistsError:
        raise
    except OSError as exc:
        raise _cannot_create(target, exc) from exc
    finally:
        scratch.unlink(missing_ok=True)
    return keys


def _cannot_create(target: Path, exc: OSError) -> KeyFileError:
    return KeyFileError(
        f"cannot create the key file {target} ({exc.strerror}); set TRADEDESK_SECRET_KEYS and "
        "TRADEDESK_ENCRYPTION_KEYS, or TRADEDESK_KEY_FILE to a writable place"
    )


def _read(target: Path) -> InstallKeys:
    try:
        fd = os.open(target, os.O_RDONLY)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise KeyFileError(f"cannot read the key file {target} ({exc.strerror})") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"the key file {target} is not a regular file")
        if info.st_mode & 0o077:
            raise KeyFileError(
                f"the key file {target} is readable or writable by other users "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); refusing to use its keys. "
                "Make it private (chmod 600) if nobody else could have read it, or delete it to get new keys"
            )
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise KeyFileError(f"the key file {target} belongs to another user; refusing to use its keys")
        with os.fdopen(os.dup(fd), "rb") as handle:
            raw = handle.read()
    finally:
        os.close(fd)
    return InstallKeys(path=target, **_parse(raw, target))


def _parse(raw: bytes, target: Path) -> dict[str, list[str]]:
    invalid = KeyFileError(f"the key file {target} is not a valid tradedesk key file")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise invalid from exc
    if not isinstance(data, dict):
        raise invalid
    lists: dict[str, list[str]] = {}
    for name in ("secret_keys", "encryption_keys"):
        value = data.get(name)
        if not isinstance(value, list) or not value or not all(isinstance(k, str) for k in value):
            raise invalid
        lists[name] = value
    if any(len(k) < _MIN_SECRET_KEY_CHARS for k in lists["secret_keys"]):
        raise invalid
    try:
        for key in lists["encryption_keys"]:
            decode_key(key)
    except ValueError as exc:
        raise invalid from exc
    return lists
