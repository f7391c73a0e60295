"""Each process test gets its own PostgreSQL database (made, migrated, dropped) and Redis key prefix, and a
factory that starts the topology on them and stops every process it started."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import APP_ROLE, create_database_with_app_role, drop_database, migrate
from tests.topology.deployment import NGINX, NO_NGINX, Deployment

StartDeployment = Callable[..., Deployment]


@pytest.fixture
def fresh_database() -> Iterator[str]:
    name = f"tradedesk_topology_{uuid.uuid4().hex[:10]}"
    create_database_with_app_role(name)
    try:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        migrate(url, app_role=APP_ROLE)
        yield url
    finally:
        drop_database(name)


@pytest.fixture
def start_deployment(fresh_database: str, redis_prefix: str, tmp_path: Path) -> Iterator[StartDeployment]:
    if NGINX is None:
        pytest.skip(NO_NGINX)
    started: list[Deployment] = []

    def start(**options: object) -> Deployment:
        deployment = Deployment(
            tmp_path / f"deployment-{len(started)}",
            database_url=fresh_database,
            redis_prefix=redis_prefix,
            **options,  # type: ignore[arg-type]
        )
        started.append(deployment)
        return deployment.start()

    yield start
    for deployment in started:
        deployment.stop()
