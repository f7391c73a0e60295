"""``python -m tradedesk``: serve the API with uvicorn (everything but host/port comes from settings)."""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn
from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tradedesk", description="Run the tradedesk API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="tradedesk's log level (default: TRADEDESK_LOG_LEVEL, else info)",
    )
    parser.add_argument("--no-access-log", action="store_true", help="do not log one line per request")
    args = parser.parse_args(argv)
    # Settings are read again by the app factory (in every worker): hand the flags over the same way.
    if args.log_level:
        os.environ["TRADEDESK_LOG_LEVEL"] = args.log_level
    if args.no_access_log:
        os.environ["TRADEDESK_ACCESS_LOG"] = "false"

    from tradedesk.config import Settings
    from tradedesk.kit.keys import KeyFileError
    from tradedesk.logs import logging_config

    try:
        settings = Settings()
        # Reads (or first creates) the development key file now, so a bad one stops the start here.
        settings.effective_secret_keys  # noqa: B018
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            print(f"tradedesk: refusing to start: {error['msg']}", file=sys.stderr)
        return 2
    except KeyFileError as exc:
        print(f"tradedesk: refusing to start: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        "tradedesk.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=logging_config(settings),
        # The client's address behind a proxy is decided by TRADEDESK_TRUSTED_PROXIES alone.
        proxy_headers=False,
        server_header=False,
        # Requests are logged by tradedesk.http, without the query strings that carry sign-in tokens.
        access_log=False,
        h11_max_incomplete_event_size=settings.max_header_bytes + 1024,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
