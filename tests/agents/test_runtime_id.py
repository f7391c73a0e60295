"""One process per runtime id: agents' leases are owned by that name, so a second live process under the
same name is refused (with a log line saying so), while a name left behind by a killed process frees itself
within the lease TTL and is taken up again."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.procs import Proc, free_port, python_module, shared_env
from tests.support.agents import build_runtime
from tradedesk.agents.runtime import RuntimeIdInUse

TTL_MS = 400


async def test_a_second_live_process_under_one_name_is_refused(api: Any) -> None:
    first = build_runtime(api, runtime_id="rt-same", lease_ttl_ms=TTL_MS)
    second = build_runtime(api, runtime_id="rt-same", lease_ttl_ms=TTL_MS)
    running = asyncio.create_task(first.run())
    try:
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(RuntimeIdInUse):
            await second.register()
        # It waited out two TTLs (a dead holder would have let go by then), not forever.
        assert 2 * TTL_MS / 1000 <= time.monotonic() - started < 2 * TTL_MS / 1000 + 1.5
    finally:
        first.stop()
        await running
    # Stopped properly, the first let go of the name: the next process takes it at once.
    started = time.monotonic()
    await second.register()
    assert time.monotonic() - started < 0.2


async def test_a_name_left_by_a_killed_process_is_taken_up_after_the_ttl(api: Any) -> None:
    killed = build_runtime(api, runtime_id="rt-killed", lease_ttl_ms=TTL_MS)
    await killed.register()  # and then never renews, as after kill -9
    successor = build_runtime(api, runtime_id="rt-killed", lease_ttl_ms=TTL_MS)
    started = time.monotonic()
    await successor.register()
    assert time.monotonic() - started < 2 * TTL_MS / 1000


@pytest.mark.multiprocess
def test_a_duplicate_worker_process_exits_with_a_clear_log_line(
    clean_database: str, redis_prefix: str
) -> None:
    unused = f"http://127.0.0.1:{free_port()}"  # no broker is needed to refuse a start
    env = shared_env(
        clean_database,
        redis_prefix,
        kite=unused,
        spa=unused,
        callback_api=unused,
        TRADEDESK_AGENT_LEASE_TTL_S="1",
    )
    first = Proc(
        python_module("tradedesk.agents.worker", "--runtime-id", "w-dup"),
        env=env,
        health_url=None,
        name="w-dup-1",
    )
    second = Proc(
        python_module("tradedesk.agents.worker", "--runtime-id", "w-dup"),
        env=env,
        health_url=None,
        name="w-dup-2",
    )
    first.start()
    try:
        deadline = time.monotonic() + 15
        while "agent runtime w-dup started" not in first.output():
            assert time.monotonic() < deadline, first.output()
            time.sleep(0.1)
        second.start()
        assert second.popen is not None
        assert second.popen.wait(timeout=15) == 2, second.output()
        assert "'w-dup' is in use by another running process; refusing to start" in second.output()
        assert first.popen is not None and first.popen.poll() is None, "the first worker went down"
    finally:
        second.stop()
        first.stop()
