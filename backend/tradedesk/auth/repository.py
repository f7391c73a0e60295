"""Accounts and their encrypted broker credentials (one row each per broker_id)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete

from tradedesk.kit.repository import BrokerScopedRepository
from tradedesk.models import Account, BrokerCredentials


class AccountRepository(BrokerScopedRepository[Account]):
    model = Account

    async def record_sign_in(self, *, user_name: str, email: str | None, now: datetime) -> None:
        existing = await self.db.scalar(self.base_select())
        if existing is None:
            await self.upsert(
                {"user_name": user_name, "email": email, "created_at": now, "last_sign_in_at": now}
            )
        else:
            existing.user_name = user_name
            existing.email = email
            existing.last_sign_in_at = now


class BrokerCredentialsRepository(BrokerScopedRepository[BrokerCredentials]):
    model = BrokerCredentials

    async def replace(self, *, credentials_enc: str, token_expires_at: datetime, now: datetime) -> None:
        await self.upsert(
            {"credentials_enc": credentials_enc, "token_expires_at": token_expires_at, "updated_at": now}
        )

    async def get(self) -> BrokerCredentials | None:
        found: BrokerCredentials | None = await self.db.scalar(self.base_select())
        return found

    async def wipe(self) -> None:
        await self.db.execute(delete(BrokerCredentials).where(BrokerCredentials.broker_id == self.broker_id))
