"""``python -m tradedesk.cli``: operator commands. ``rotate-keys`` re-encrypts stored broker credentials
under the newest encryption key; ``openapi`` prints the API's OpenAPI document (the SPA's typed client is
generated from it)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import dataclass, field

from pydantic import ValidationError
from redis.exceptions import WatchError
from sqlalchemy import select, text, union, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tradedesk.config import Settings
from tradedesk.db import create_engine, create_sessionmaker
from tradedesk.kit.crypto import CredentialCipher, CredentialsDecryptError
from tradedesk.kit.repository import tenant_session
from tradedesk.models import BrokerCredentials, WebSession
from tradedesk.redis import RedisClient, create_redis
from tradedesk.sessions.record import SessionRecord, SessionRecordCodec
from tradedesk.sessions.redis_store import key_hash_of_session_key, session_key_prefix

ROTATE_KEYS_HELP = """\
Re-encrypt every stored broker credential under the newest (first) key of TRADEDESK_ENCRYPTION_KEYS:
the broker_credentials rows, and the credentials inside stored session records (web_sessions, and
Redis when TRADEDESK_REDIS_URL is set; these are re-MACed under the first TRADEDESK_SECRET_KEYS key).

Rotating a key:
  1. put the new key first and keep the old one after it, on every API process, and restart them;
  2. run this command with the same settings;
  3. once it reports nothing unreadable, and pending sign-ins have expired
     (TRADEDESK_PENDING_SIGNIN_TTL_S), remove the old key.
Running it again is safe: what is already under the newest key is left as it is.

Database: it connects as TRADEDESK_MIGRATION_DATABASE_URL when set, else TRADEDESK_DATABASE_URL.
Tenant tables are under row-level security, so each broker_id is rewritten in its own transaction
bound to it (app.broker_id). Finding every broker_id on PostgreSQL needs a role that may read past
row-level security (superuser or BYPASSRLS, e.g. the migration role where it has that); with a role
that may not, name the accounts with --broker-id.

Exit status: 0 done; 1 some ciphertexts open with no configured key (left as they are: a copy moved
to another user, or a key already removed); 2 refused (settings, or no way to list the accounts)."""


class CliError(Exception):
    """A refusal with a message for the operator."""


@dataclass
class Tally:
    rotated: int = 0
    current: int = 0
    unreadable: list[str] = field(default_factory=list)

    def line(self, place: str) -> str:
        text = f"{place}: {self.rotated} re-encrypted, {self.current} already current"
        if self.unreadable:
            text += f", {len(self.unreadable)} unreadable ({', '.join(self.unreadable)})"
        return text


@dataclass
class RotationReport:
    credentials: Tally = field(default_factory=Tally)
    sql_sessions: Tally = field(default_factory=Tally)
    redis_sessions: Tally | None = None

    @property
    def unreadable(self) -> int:
        tallies = [
            self.credentials,
            self.sql_sessions,
            *([self.redis_sessions] if self.redis_sessions else []),
        ]
        return sum(len(t.unreadable) for t in tallies)

    def lines(self) -> list[str]:
        lines = [self.credentials.line("broker_credentials"), self.sql_sessions.line("sessions in SQL")]
        if self.redis_sessions is not None:
            lines.append(self.redis_sessions.line("sessions in Redis"))
        return lines


async def rotate_keys(
    settings: Settings, *, database_url: str, broker_ids: list[str] | None = None
) -> RotationReport:
    cipher = CredentialCipher(settings.effective_encryption_keys)
    codec = SessionRecordCodec(settings.effective_secret_keys)
    report = RotationReport()
    engine = create_engine(database_url)
    try:
        sessionmaker = create_sessionmaker(engine)
        for broker_id in broker_ids or await _every_broker_id(sessionmaker):
            async with tenant_session(sessionmaker, broker_id) as db:
                await _rotate_credentials(db, cipher, broker_id, report.credentials)
                await _rotate_sql_sessions(db, cipher, codec, broker_id, report.sql_sessions)
    finally:
        await engine.dispose()
    if settings.redis_url:
        redis = create_redis(settings.redis_url, timeout_s=max(settings.redis_timeout_s, 5.0))
        try:
            report.redis_sessions = await _rotate_redis_sessions(
                redis, settings.redis_key_prefix, cipher, codec, only=set(broker_ids) if broker_ids else None
            )
        finally:
            await redis.aclose()
    return report


async def _every_broker_id(sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessionmaker() as db, db.begin():
        if db.get_bind().dialect.name == "postgresql":
            sees_all = await db.scalar(
                text("select rolsuper or rolbypassrls from pg_roles where rolname = current_user")
            )
            if not sees_all:
                raise CliError(
                    "this database role cannot list every account past row-level security; connect with "
                    "a superuser or BYPASSRLS role (TRADEDESK_MIGRATION_DATABASE_URL), or name the "
                    "accounts with --broker-id"
                )
        rows = await db.scalars(
            union(select(BrokerCredentials.broker_id), select(WebSession.broker_id)).order_by("broker_id")
        )
        return list(rows)


async def _rotate_credentials(
    db: AsyncSession, cipher: CredentialCipher, broker_id: str, tally: Tally
) -> None:
    sealed = await db.scalar(
        select(BrokerCredentials.credentials_enc).where(BrokerCredentials.broker_id == broker_id)
    )
    if sealed is None:
        return
    try:
        fresh = cipher.rotate(sealed, broker_id=broker_id)
    except CredentialsDecryptError:
        tally.unreadable.append(broker_id)
        return
    if fresh is None:
        tally.current += 1
        return
    # Compare-and-set: a sign-in that replaced the row meanwhile wrote newer credentials; keep those.
    changed = await db.execute(
        update(BrokerCredentials)
        .where(BrokerCredentials.broker_id == broker_id, BrokerCredentials.credentials_enc == sealed)
        .values(credentials_enc=fresh)
        .returning(BrokerCredentials.broker_id)
    )
    if changed.first() is not None:
        tally.rotated += 1


def _reseal(
    raw: bytes, record: SessionRecord | None, cipher: CredentialCipher, codec: SessionRecordCodec
) -> bytes | None:
    """The stored record re-encrypted and re-MACed under the newest keys; None when it already is.
    Raises CredentialsDecryptError when the record failed its MAC or its credentials do not open."""
    if record is None:
        raise CredentialsDecryptError("the record fails its integrity check")
    fresh = cipher.rotate(record.credentials_enc, broker_id=record.broker_id)
    if fresh is not None:
        record = record.model_copy(update={"credentials_enc": fresh})
    resealed = codec.encode(record)
    return None if resealed == raw else resealed


async def _rotate_sql_sessions(
    db: AsyncSession, cipher: CredentialCipher, codec: SessionRecordCodec, broker_id: str, tally: Tally
) -> None:
    rows = await db.execute(
        select(WebSession.key_hash, WebSession.record).where(WebSession.broker_id == broker_id)
    )
    for key_hash, stored in rows.all():
        try:
            raw = stored.encode("utf-8")
            resealed = _reseal(raw, codec.decode(raw, key_hash=key_hash), cipher, codec)
        except CredentialsDecryptError:
            tally.unreadable.append(f"{broker_id} session {key_hash[:8]}")
            continue
        if resealed is None:
            tally.current += 1
            continue
        changed = await db.execute(
            update(WebSession)
            .where(WebSession.key_hash == key_hash, WebSession.record == stored)
            .values(record=resealed.decode("utf-8"))
            .returning(WebSession.key_hash)
        )
        if changed.first() is not None:
            tally.rotated += 1


async def _rotate_redis_sessions(
    redis: RedisClient,
    prefix: str,
    cipher: CredentialCipher,
    codec: SessionRecordCodec,
    *,
    only: set[str] | None,
) -> Tally:
    tally = Tally()
    async for name in redis.scan_iter(match=f"{session_key_prefix(prefix)}*", count=500):
        key = name.decode("utf-8") if isinstance(name, bytes) else str(name)
        key_hash = key_hash_of_session_key(prefix, key)
        for _ in range(5):
            # WATCH: if the API touches the record between our read and write, read it again.
            async with redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    stored = await pipe.get(key)
                    if stored is None:
                        break
                    raw = stored if isinstance(stored, bytes) else str(stored).encode("utf-8")
                    record = codec.decode(raw, key_hash=key_hash)
                    if only is not None and (record is None or record.broker_id not in only):
                        break
                    try:
                        resealed = _reseal(raw, record, cipher, codec)
                    except CredentialsDecryptError:
                        owner = record.broker_id if record else "?"
                        tally.unreadable.append(f"{owner} session {key_hash[:8]}")
                        break
                    if resealed is None:
                        tally.current += 1
                        break
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, resealed, xx=True, keepttl=True)
                    await pipe.execute()
                    tally.rotated += 1
                    break
                except WatchError:
                    continue
        else:
            tally.unreadable.append(f"session {key_hash[:8]} kept changing; run again")
    return tally


def openapi_json() -> str:
    """The document the SPA's client is generated from: the development defaults' app, stable key order."""
    from tradedesk.main import create_app

    return json.dumps(create_app(Settings(env="development")).openapi(), indent=2, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tradedesk.cli", description="tradedesk operator commands."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    rotate = commands.add_parser(
        "rotate-keys",
        help="re-encrypt stored broker credentials under the newest key",
        description=ROTATE_KEYS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rotate.add_argument(
        "--broker-id",
        action="append",
        dest="broker_ids",
        metavar="ID",
        help="rotate only this account (repeatable); needed when the role cannot bypass row-level security",
    )
    commands.add_parser(
        "openapi",
        help="print the API's OpenAPI document (JSON)",
        description="Print the API's OpenAPI document as stable JSON (sorted keys). `make api-client` "
        "writes it to frontend/openapi.json and regenerates the SPA's types from it.",
    )
    args = parser.parse_args(argv)
    if args.command == "openapi":
        print(openapi_json())
        return 0

    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            print(f"tradedesk: refusing to run: {error['msg']}", file=sys.stderr)
        return 2
    database_url = os.environ.get("TRADEDESK_MIGRATION_DATABASE_URL") or settings.database_url
    try:
        report = asyncio.run(rotate_keys(settings, database_url=database_url, broker_ids=args.broker_ids))
    except CliError as exc:
        print(f"tradedesk: rotate-keys refused: {exc}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    if report.unreadable:
        print(
            "some ciphertexts open with no configured key for their account and were left as they are",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
