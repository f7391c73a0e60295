"""``python -m kitesim``: serve the simulator with uvicorn; flags override ``KITESIM_…`` settings."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import uvicorn
from pydantic import ValidationError

from kitesim.app import create_app
from kitesim.config import KitesimSettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kitesim", description="Kite Connect v3 simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--speed", type=float, help="sim-clock speed factor (1 = real time)")
    parser.add_argument("--seed", type=int, help="seed of the simulated market")
    parser.add_argument("--redirect-url", help="the demo app's redirect URL (tradedesk's /api/auth/callback)")
    parser.add_argument(
        "--start-at", help="sim clock start, ISO 8601 with an offset, e.g. 2025-01-06T09:15+05:30"
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> KitesimSettings:
    overrides: dict[str, Any] = {
        name: value
        for name, value in (
            ("speed", args.speed),
            ("seed", args.seed),
            ("redirect_url", args.redirect_url),
            ("start_at", args.start_at),
        )
        if value is not None
    }
    return KitesimSettings(**overrides)


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        parser.error(str(exc))
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
