"""The parts of Kite Connect v3 payloads we read (unknown fields are ignored)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class KiteModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class KiteProfile(KiteModel):
    user_id: str
    user_name: str
    user_shortname: str | None = None
    email: str | None = None
    user_type: str | None = None
    broker: str | None = None


class KiteSession(KiteProfile):
    api_key: str
    access_token: str
    login_time: str | None = None
