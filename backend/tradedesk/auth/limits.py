"""How many sign-in attempts an address, and an api_key, may make per window: each attempt may cost a
broker call, so neither a busy address nor one key tried from rotating addresses gets more."""

from __future__ import annotations

from tradedesk.kit.ratelimit import RateLimiter
from tradedesk.logs import log_tag


class SignInLimiter:
    def __init__(
        self, limiter: RateLimiter, *, per_address_limit: int, per_key_limit: int, window_s: int
    ) -> None:
        self._limiter = limiter
        self.per_address_limit = per_address_limit
        self.per_key_limit = per_key_limit
        self.window_s = window_s

    async def hit_address(self, ip: str | None) -> int | None:
        """Count one attempt from ``ip``; the seconds to wait when it has had its share, else None."""
        return await self._limiter.hit(
            f"signin:{ip or 'unknown'}", limit=self.per_address_limit, window_s=self.window_s
        )

    async def hit_key(self, api_key: str) -> int | None:
        """Count one attempt with ``api_key``; the limiter only ever sees a hash of the key."""
        return await self._limiter.hit(
            f"signin-key:{log_tag(api_key)}", limit=self.per_key_limit, window_s=self.window_s
        )
