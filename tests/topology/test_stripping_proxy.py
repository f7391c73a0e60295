"""Bad input: a proxy that strips X-Forwarded-For and X-Forwarded-Proto (a minimal or misconfigured one, in
TRADEDESK_TRUSTED_PROXIES all the same) changes nothing a trader can see beyond a bounded retry.

What differs, and only this: the API records the proxy's address as every trader's (the Devices list and
the audit trail show 127.0.0.1), and so every trader behind it shares one per-address sign-in budget; past
it a sign-in is answered 429 with a Retry-After no longer than the rate window, and succeeds once that
has passed. The scheme changes nothing: redirects are built from TRADEDESK_SPA_URL, cookies are Secure and
HSTS is sent because of TRADEDESK_COOKIE_SECURE, and the Origin and CSRF checks read only the request's
own headers."""

from __future__ import annotations

import time

import pytest

from tests.topology.conftest import StartDeployment
from tests.topology.deployment import (
    BROWSER_ADDRESS,
    OTHER_BROWSER_ADDRESS,
    PROXY_ADDRESS,
    STANDARD,
    STRIPPING,
    finish_redirect_sign_in,
    sign_in_with_request_token,
    start_redirect_sign_in,
)

pytestmark = pytest.mark.multiprocess

# One sign-in per client address per window: the smallest budget, so sharing it shows at once.
RATE_WINDOW_S = 3


def test_stripped_forwarded_headers_cost_a_trader_at_most_a_bounded_retry(
    start_deployment: StartDeployment,
) -> None:
    deployment = start_deployment(
        proxies=(STRIPPING, STANDARD),
        settings={"TRADEDESK_SIGNIN_RATE_LIMIT": "1", "TRADEDESK_SIGNIN_RATE_WINDOW_S": str(RATE_WINDOW_S)},
    )
    stripping, standard = deployment.proxy_origins(STRIPPING), deployment.proxy_origins(STANDARD)

    # Through the proxy that says who the client is, two traders at two addresses: a budget each.
    for user_id, address in (("DEMO01", BROWSER_ADDRESS), ("DEMO02", OTHER_BROWSER_ADDRESS)):
        with deployment.browser(proxy=STANDARD, address=address) as browser:
            sign_in_with_request_token(browser, standard, user_id)
            sessions = browser.get(f"{standard.api}/api/auth/sessions").json()
            assert [session["ip"] for session in sessions] == [address]

    with (
        deployment.browser(proxy=STRIPPING, address=BROWSER_ADDRESS) as first,
        deployment.browser(proxy=STRIPPING, address=OTHER_BROWSER_ADDRESS) as second,
    ):
        started = start_redirect_sign_in(first, stripping)
        assert started.status_code == 200, started.text
        # Behind the stripping proxy both traders are 127.0.0.1 to the API: one budget, now spent.
        refused = start_redirect_sign_in(second, stripping)
        refused_at = time.monotonic()
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "TooManyRequests"
        retry_after_s = int(refused.headers["retry-after"])
        assert 1 <= retry_after_s <= RATE_WINDOW_S

        # Meanwhile the first trader notices nothing: the redirect flow ends on the https SPA URL, the
        # cookies are the Secure __Host- ones, reads and unsafe requests (Origin + CSRF checks) pass.
        status = finish_redirect_sign_in(first, stripping, started, "DEMO01")
        assert status["broker"]["state"] == "connected"  # type: ignore[index]
        assert {cookie.name for cookie in first.cookies.jar} >= {
            "__Host-tradedesk",
            "__Host-tradedesk_device",
        }
        summary = first.get(f"{stripping.api}/api/pnl/summary")
        assert summary.status_code == 200, summary.text
        assert "max-age" in summary.headers["strict-transport-security"]
        risk = first.put(f"{stripping.api}/api/risk", json={"daily_loss_limit": "1500"})
        assert risk.status_code == 200, risk.text
        agent = first.post(f"{stripping.api}/api/agents", json={"strategy": "sma_crossover"})
        assert agent.status_code == 201, agent.text
        # What differs: the address the API records is the proxy's, not the trader's.
        sessions = first.get(f"{stripping.api}/api/auth/sessions").json()
        assert [session["ip"] for session in sessions if session["current"]] == [PROXY_ADDRESS]

        # The second trader's retry, after the Retry-After it was given, goes through.
        time.sleep(max(0.0, refused_at + retry_after_s - time.monotonic()) + 0.1)
        status = finish_redirect_sign_in(
            second, stripping, start_redirect_sign_in(second, stripping), "DEMO02"
        )
        assert status["broker_id"] == "DEMO02"
        sessions = second.get(f"{stripping.api}/api/auth/sessions").json()
        assert [session["ip"] for session in sessions if session["current"]] == [PROXY_ADDRESS]

        assert first.post(f"{stripping.api}/api/auth/logout").status_code == 204
        assert first.get(f"{stripping.api}/api/auth/status").json()["authenticated"] is False
