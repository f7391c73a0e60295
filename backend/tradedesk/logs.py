"""Operator logs: one JSON object per line, the request id on every line written during a request, and
secrets scrubbed from messages and tracebacks before anything is written."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from tradedesk.config import Settings

request_id_var: ContextVar[str | None] = ContextVar("tradedesk_request_id", default=None)

_REDACTED = "[redacted]"
# Values that must never reach a log line, whatever message carries them: query strings and form bodies
# of the sign-in routes, JSON fields, Authorization headers, cookies, and SQL parameters.
_SECRET_NAMES = "|".join(  # names of secrets, not secrets
    (
        "request_token",
        "state",
        "access_token",
        "api_secret",
        "secret",
        "checksum",
        "password",
        "csrf_token",
        "refresh_token",
        "enctoken",
        "public_token",
        "x-csrf-token",
    )
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"(?i)\b({_SECRET_NAMES})=[^&\s\"';,)\]]+"), rf"\1={_REDACTED}"),
    (re.compile(rf"(?i)([\"']({_SECRET_NAMES})[\"']\s*:\s*)[\"'][^\"']*[\"']"), rf"\1'{_REDACTED}'"),
    (re.compile(r"(?i)\b(authorization[\"']?\s*[:=,]\s*[\"']?)[^\"'\n]+"), rf"\1{_REDACTED}"),
    (re.compile(r"(?i)\b(token|bearer|basic)\s+[A-Za-z0-9._~+/=-]+:[A-Za-z0-9._~+/=-]+"), rf"\1 {_REDACTED}"),
    (re.compile(r"(?i)\b((?:__Host-)?tradedesk(?:_device|_signin)?)=[^;\s\"']+"), rf"\1={_REDACTED}"),
    (re.compile(r"(?is)\[parameters: .*?\](?=\s*(?:\(|$|\n))"), f"[parameters: {_REDACTED}]"),
    # asyncpg names the offending argument's value in its own message.
    (re.compile(r"(?i)(query argument \$\d+: ).*?(?= \(|$|\n)"), rf"\1{_REDACTED}"),
)


# Every pattern above needs one of these; most lines (a request line, say) have none and skip the rest.
_TRIGGERS = re.compile(r"(?i)[=:]|token|bearer|basic|authorization|\[parameters")


def redact(text: str) -> str:
    if _TRIGGERS.search(text) is None:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def log_tag(value: str) -> str:
    """A short, stable label for an identifier (a broker_id, an api_key) in operator logs and limiter
    keys: enough to match lines up, nothing to sign in with."""
    return hashlib.sha256(b"tradedesk.log:" + value.encode("utf-8")).hexdigest()[:12]


# LogRecord attributes that are not caller-supplied extras.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        request_id = request_id_var.get()
        if request_id:
            payload["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = request_id_var.get()
        return redact(f"{text} request_id={request_id}" if request_id else text)


def logging_config(settings: Settings) -> dict[str, Any]:
    """A dictConfig for the process (uvicorn takes it as ``log_config``): everything through one
    redacting formatter on stderr; tradedesk's own loggers at the configured level."""
    formatter = "json" if settings.log_format == "json" else "text"
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": JsonFormatter},
            "text": {"()": TextFormatter},
        },
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": formatter, "stream": sys.stderr},
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
        "loggers": {
            "tradedesk": {"level": level, "propagate": True},
            "uvicorn": {"level": "INFO", "handlers": [], "propagate": True},
            "uvicorn.error": {"level": "INFO", "propagate": True},
            # Requests are logged by tradedesk.http, with the query string of sign-in routes removed.
            "uvicorn.access": {"level": "WARNING", "propagate": True},
        },
    }
