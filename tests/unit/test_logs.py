"""The redaction every log line goes through, the JSON line format, and database errors that carry no
statement parameters."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tradedesk.db import create_engine
from tradedesk.logs import JsonFormatter, TextFormatter, log_tag, redact, request_id_var


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("GET /api/auth/callback?request_token=RTOKEN123&status=success&state=STATE456", "RTOKEN123"),
        ("GET /api/auth/callback?request_token=RTOKEN123&status=success&state=STATE456", "STATE456"),
        ("form api_key=k&access_token=ACCESS789&x=1", "ACCESS789"),
        ('{"api_secret": "SECRETABC", "api_key": "k"}', "SECRETABC"),
        ("{'access_token': 'ACCESS789'}", "ACCESS789"),
        ("headers: Authorization: token tradedesk-demo:ACCESS789", "ACCESS789"),
        ("Authorization=Bearer METRICSTOKEN", "METRICSTOKEN"),
        ("cookie: tradedesk=SIDVALUE.ts.sig; tradedesk_device=DEV", "SIDVALUE"),
        ("cookie: __Host-tradedesk=SIDVALUE.ts.sig", "SIDVALUE"),
        ("checksum=abcdef0123456789 sent", "abcdef0123456789"),
        (
            "[SQL: select 1 where x = $1]\n[parameters: ('PARAMSECRET',)]\n(Background on this error",
            "PARAMSECRET",
        ),
        ("X-CSRF-Token=CSRFVALUE", "CSRFVALUE"),
    ],
)
def test_redact_removes_secrets(line: str, secret: str) -> None:
    cleaned = redact(line)
    assert secret not in cleaned
    assert "[redacted]" in cleaned


def test_redact_keeps_ordinary_text() -> None:
    line = "GET /api/trades 200 3.1ms broker=1a2b3c4d5e6f stated: fine"
    assert redact(line) == line


def test_json_lines_carry_request_id_extras_and_a_redacted_traceback() -> None:
    logger = logging.getLogger("tradedesk.test")
    token = request_id_var.set("req-0123456789")
    try:
        try:
            raise RuntimeError("failed with access_token=LEAKED")
        except RuntimeError:
            record = logger.makeRecord(
                "tradedesk.test",
                logging.ERROR,
                __file__,
                1,
                "sync failed for %s",
                ("state=ABC",),
                sys.exc_info(),
                extra={"route": "/api/sync"},
            )
        line = json.loads(JsonFormatter().format(record))
        text_line = TextFormatter().format(record)
    finally:
        request_id_var.reset(token)
    assert line["request_id"] == "req-0123456789"
    assert line["route"] == "/api/sync" and line["level"] == "error" and line["logger"] == "tradedesk.test"
    assert "ABC" not in line["msg"] and "LEAKED" not in line["exc"] and "RuntimeError" in line["exc"]
    assert "LEAKED" not in text_line and "request_id=req-0123456789" in text_line


def test_log_tag_is_short_stable_and_not_the_id() -> None:
    assert log_tag("AB1234") == log_tag("AB1234")
    assert log_tag("AB1234") != log_tag("AB1235")
    assert len(log_tag("AB1234")) == 12 and "AB1234" not in log_tag("AB1234")


async def test_database_errors_do_not_carry_statement_parameters(pg_database: str) -> None:
    engine = create_engine(pg_database)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as raised:
                await conn.execute(text("select cast(:value as bigint)"), {"value": "PARAMSECRET-42"})
    finally:
        await engine.dispose()
    message = str(raised.value)
    assert "SQL parameters hidden" in message
    # The driver still quotes the bad value in its own message; what reaches a log line has it removed.
    assert "PARAMSECRET" not in redact(message)
