"""``python -m tradedesk``: serve the API with uvicorn (everything but host/port comes from settings)."""

from __future__ import annotations

import argparse
import sys

import uvicorn
from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tradedesk", description="Run the tradedesk API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--no-access-log", action="store_true", help="do not log one line per request")
    args = parser.parse_args(argv)

    from tradedesk.config import Settings

    try:
        Settings()
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            print(f"tradedesk: refusing to start: {error['msg']}", file=sys.stderr)
        return 2
    uvicorn.run(
        "tradedesk.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        proxy_headers=True,
        access_log=not args.no_access_log,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
