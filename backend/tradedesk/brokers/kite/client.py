"""Kite Connect v3 over httpx: form-encoded requests, ``token api_key:access_token`` auth, error envelopes
mapped to our errors. Secrets travel only in request bodies and headers, never into messages."""

from __future__ import annotations

import csv
import hashlib
import io
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, RootModel, ValidationError

from tradedesk.brokers.kite.schemas import (
    KiteCandle,
    KiteInstrument,
    KiteLtp,
    KiteOrder,
    KiteOrderId,
    KitePositions,
    KiteProfile,
    KiteSession,
    KiteTrade,
)
from tradedesk.errors import (
    AppError,
    BrokerInputRejected,
    BrokerTimeout,
    BrokerTokenInvalid,
    BrokerUnavailable,
    Forbidden,
    SignInRejected,
)
from tradedesk.kit.clock import IST

M = TypeVar("M", bound=BaseModel)
Params = dict[str, str] | list[tuple[str, str | int | float | bool | None]]

# (endpoint as "METHOD /path/template", duration_s, error class name or None): told of every broker call.
BrokerCallObserver = Callable[[str, float, str | None], None]


class _TradeList(RootModel[list[KiteTrade]]):
    pass


class _LtpMap(RootModel[dict[str, KiteLtp]]):
    pass


class _OrderList(RootModel[list[KiteOrder]]):
    pass


def session_checksum(api_key: str, request_token: str, api_secret: str) -> str:
    return hashlib.sha256(f"{api_key}{request_token}{api_secret}".encode()).hexdigest()


class KiteClient:
    def __init__(
        self,
        *,
        base_url: str,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            headers={"X-Kite-Version": "3", "User-Agent": "tradedesk/0.1"},
        )
        self.call_observer: BrokerCallObserver | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def generate_session(self, *, api_key: str, request_token: str, api_secret: str) -> KiteSession:
        form = {
            "api_key": api_key,
            "request_token": request_token,
            "checksum": session_checksum(api_key, request_token, api_secret),
        }
        data = await self._call("POST", "/session/token", data=form, signing_in=True)
        return _parse(KiteSession, data, "POST /session/token")

    async def profile(self, *, api_key: str, access_token: str) -> KiteProfile:
        data = await self._call("GET", "/user/profile", auth=(api_key, access_token))
        return _parse(KiteProfile, data, "GET /user/profile")

    async def trades(self, *, api_key: str, access_token: str) -> list[KiteTrade]:
        data = await self._call("GET", "/trades", auth=(api_key, access_token))
        return _parse(_TradeList, data, "GET /trades").root

    async def orders(self, *, api_key: str, access_token: str) -> list[KiteOrder]:
        data = await self._call("GET", "/orders", auth=(api_key, access_token))
        return _parse(_OrderList, data, "GET /orders").root

    async def positions(self, *, api_key: str, access_token: str) -> KitePositions:
        data = await self._call("GET", "/portfolio/positions", auth=(api_key, access_token))
        return _parse(KitePositions, data, "GET /portfolio/positions")

    async def place_order(
        self, *, api_key: str, access_token: str, variety: str = "regular", order: dict[str, str]
    ) -> str:
        data = await self._call("POST", f"/orders/{variety}", data=order, auth=(api_key, access_token))
        return _parse(KiteOrderId, data, "POST /orders").order_id

    async def modify_order(
        self,
        *,
        api_key: str,
        access_token: str,
        order_id: str,
        variety: str = "regular",
        changes: dict[str, str],
    ) -> str:
        data = await self._call(
            "PUT",
            f"/orders/{variety}/{order_id}",
            data=changes,
            auth=(api_key, access_token),
            endpoint="PUT /orders/{variety}/{order_id}",
        )
        return _parse(KiteOrderId, data, "PUT /orders").order_id

    async def cancel_order(
        self, *, api_key: str, access_token: str, order_id: str, variety: str = "regular"
    ) -> str:
        data = await self._call(
            "DELETE",
            f"/orders/{variety}/{order_id}",
            auth=(api_key, access_token),
            endpoint="DELETE /orders/{variety}/{order_id}",
        )
        return _parse(KiteOrderId, data, "DELETE /orders").order_id

    async def ltp(self, *, api_key: str, access_token: str, keys: list[str]) -> dict[str, KiteLtp]:
        """Last prices of up to 1000 instruments (``EXCHANGE:SYMBOL``) in one call."""
        if not keys:
            return {}
        data = await self._call(
            "GET", "/quote/ltp", params=[("i", key) for key in keys], auth=(api_key, access_token)
        )
        return _parse(_LtpMap, data, "GET /quote/ltp").root

    async def instruments(self, *, api_key: str, access_token: str, exchange: str) -> list[KiteInstrument]:
        text = await self._call_text(
            "GET",
            f"/instruments/{exchange}",
            auth=(api_key, access_token),
            endpoint="GET /instruments/{exchange}",
        )
        try:
            return [KiteInstrument.model_validate(row) for row in csv.DictReader(io.StringIO(text))]
        except ValidationError as exc:
            raise BrokerUnavailable("The broker's instrument list could not be read.") from exc

    async def historical(
        self,
        *,
        api_key: str,
        access_token: str,
        instrument_token: int,
        interval: str,
        start: datetime,
        end: datetime,
    ) -> list[KiteCandle]:
        params: Params = [
            ("from", start.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")),
            ("to", end.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")),
        ]
        data = await self._call(
            "GET",
            f"/instruments/historical/{instrument_token}/{interval}",
            params=params,
            auth=(api_key, access_token),
            endpoint="GET /instruments/historical/{token}/{interval}",
        )
        try:
            rows = data["candles"] if isinstance(data, dict) else None
            assert isinstance(rows, list)
            return [
                KiteCandle(
                    at=datetime.fromisoformat(str(row[0])),
                    open=row[1],
                    high=row[2],
                    low=row[3],
                    close=row[4],
                    volume=int(row[5]) if len(row) > 5 else 0,
                )
                for row in rows
            ]
        except (AssertionError, ValidationError, ValueError, IndexError, TypeError) as exc:
            raise BrokerUnavailable("The broker's candles could not be read.") from exc

    async def invalidate_token(self, *, api_key: str, access_token: str) -> None:
        await self._call(
            "DELETE",
            "/session/token",
            params={"api_key": api_key, "access_token": access_token},
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        data: dict[str, str] | None = None,
        params: Params | None = None,
        auth: tuple[str, str] | None = None,
        signing_in: bool = False,
        endpoint: str | None = None,
    ) -> object:
        """The ``data`` member of a successful answer; every failure raised as an AppError. ``endpoint``
        names the call in metrics (a template, never an id or a token); it defaults to the path."""
        name = endpoint or f"{method} {path}"
        started_at = time.perf_counter()
        try:
            answer = await self._exchange(
                method, path, data=data, params=params, auth=auth, signing_in=signing_in
            )
        except Exception as exc:
            self._observe(name, started_at, type(exc).__name__)
            raise
        self._observe(name, started_at, None)
        return answer

    async def _call_text(self, method: str, path: str, *, auth: tuple[str, str], endpoint: str) -> str:
        """A CSV answer (instruments); errors still come as Kite's JSON envelope."""
        started_at = time.perf_counter()
        headers = {"Authorization": f"token {auth[0]}:{auth[1]}"}
        try:
            try:
                response = await self._http.request(method, path, headers=headers)
            except httpx.TimeoutException as exc:
                raise BrokerTimeout(f"The broker did not answer {endpoint} in time.") from exc
            except httpx.HTTPError as exc:
                raise BrokerUnavailable(f"The broker could not be reached for {endpoint}.") from exc
            if response.status_code >= 400:
                try:
                    body = response.json()
                except ValueError:
                    body = {}
                raise _map_error(
                    response.status_code, body if isinstance(body, dict) else {}, signing_in=False
                )
        except Exception as exc:
            self._observe(endpoint, started_at, type(exc).__name__)
            raise
        self._observe(endpoint, started_at, None)
        return response.text

    def _observe(self, endpoint: str, started_at: float, error: str | None) -> None:
        if self.call_observer is not None:
            self.call_observer(endpoint, time.perf_counter() - started_at, error)

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        data: dict[str, str] | None,
        params: Params | None,
        auth: tuple[str, str] | None,
        signing_in: bool,
    ) -> object:
        headers = {"Authorization": f"token {auth[0]}:{auth[1]}"} if auth else None
        try:
            response = await self._http.request(method, path, data=data, params=params, headers=headers)
        except httpx.TimeoutException as exc:
            raise BrokerTimeout(f"The broker did not answer {method} {path} in time.") from exc
        except httpx.HTTPError as exc:
            raise BrokerUnavailable(f"The broker could not be reached for {method} {path}.") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise BrokerUnavailable(
                f"The broker answered {method} {path} with HTTP {response.status_code} and no readable JSON."
            )
        if response.status_code >= 400 or body.get("status") == "error":
            raise _map_error(response.status_code, body, signing_in=signing_in)
        return body.get("data")


def _parse(model: type[M], data: object, what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BrokerUnavailable(f"The broker's answer to {what} could not be read.") from exc


def _map_error(status: int, body: dict[str, Any], *, signing_in: bool) -> AppError:
    error_type = str(body.get("error_type") or "GeneralException")
    message = str(body.get("message") or "no message").strip()
    if error_type == "TokenException":
        if signing_in:
            return SignInRejected(f"The broker rejected the sign-in: {message}")
        return BrokerTokenInvalid(f"The broker rejected the access token: {message}")
    if error_type in ("InputException", "OrderException"):
        return BrokerInputRejected(f"The broker rejected the request: {message}")
    if error_type == "PermissionException":
        return Forbidden(f"The broker refused permission: {message}")
    if status == 504:
        return BrokerTimeout(f"The broker timed out: {message}")
    return BrokerUnavailable(f"The broker failed ({error_type}, HTTP {status}): {message}")
