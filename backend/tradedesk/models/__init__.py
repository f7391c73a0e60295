"""Every ORM model, on one Base whose MetaData names constraints predictably (alembic relies on it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Account(Base):
    """One row per broker account that has ever signed in."""

    __tablename__ = "accounts"

    broker_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_sign_in_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BrokerCredentials(Base):
    """The account's current broker credentials, encrypted; agents use them while no browser is open."""

    __tablename__ = "broker_credentials"

    broker_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    credentials_enc: Mapped[str] = mapped_column(Text)
    token_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebSession(Base):
    """Browser sessions for the embedded (no Redis) setup; keyed by sha256 of the session id."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_broker_id_expires_at", "broker_id", "expires_at"),)

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    broker_id: Mapped[str] = mapped_column(String(32))
    record: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class PendingSignIn(Base):
    """A redirect sign-in between /login and /callback (embedded setup); keyed by sha256 of state."""

    __tablename__ = "pending_signins"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    payload: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
