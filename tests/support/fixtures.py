"""Fixtures (a pytest plugin, loaded by tests/conftest.py): a real Redis (embedded, REDIS_URL, or the test
cluster), the LINE stand-in, and the bot served on loopback against both.

Every bot a test gets from `bot` or `bot_with` is stopped after the test, and then the stand-in must have
recorded no LINE protocol violation: a test that provokes one on purpose clears `platform.violations` itself.
"""
from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis as sync_redis

from bot.infra.redis_conn import EmbeddedRedis, cluster_node_url, is_cluster_url
from linesim.platform import Platform
from tests.support.cluster import CLUSTER, LocalCluster
from tests.support.harness import BASIC_ID, SECRET, TOKEN, Bot, BotWith, make_settings, start_bot
from tests.support.slot_guard import guard

HANG_REPORT_SECONDS = float(os.environ.get("SHOKAI_HANG_REPORT_SECONDS", "120"))


def sync_client(url: str) -> sync_redis.Redis | sync_redis.RedisCluster:
    """A blocking client for fixtures: a cluster client when the URL says cluster."""
    if is_cluster_url(url):
        return sync_redis.RedisCluster.from_url(cluster_node_url(url))
    return sync_redis.Redis.from_url(url)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if os.environ.get("REDIS_URL") and not CLUSTER:
        yield os.environ["REDIS_URL"]
        return
    if CLUSTER:
        with tempfile.TemporaryDirectory(prefix="shokai-test-cluster-") as data:
            cluster = LocalCluster(Path(data)).start()
            try:
                yield cluster.url
            finally:
                cluster.stop()
        return
    with tempfile.TemporaryDirectory(prefix="shokai-test-redis-") as data:
        server = EmbeddedRedis(Path(data)).start()
        try:
            yield server.url
        finally:
            server.stop()


@pytest.fixture(autouse=True)
def lua_slot_guard() -> Iterator[list[str]]:
    """Every Lua script call in every test: KEYS in one slot, and no key touched that KEYS did not declare."""
    with guard() as calls:
        yield calls


@pytest_asyncio.fixture(autouse=True)
async def hang_report(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """A test still running after HANG_REPORT_SECONDS prints every asyncio task's stack, so a hang in CI
    says where it waits (pytest-timeout, at 300 s, shows only the event loop's idle select)."""
    loop = asyncio.get_running_loop()

    def report() -> None:
        print(f"\n--- {request.node.nodeid}: still running after {HANG_REPORT_SECONDS:.0f}s; its tasks:", file=sys.stderr)
        for task in asyncio.all_tasks(loop):
            task.print_stack(limit=12, file=sys.stderr)
        sys.stderr.flush()

    handle = loop.call_later(HANG_REPORT_SECONDS, report)
    yield
    handle.cancel()


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    client = sync_client(redis_url)
    client.flushdb()  # on a cluster: every primary
    client.close()
    return redis_url


@pytest_asyncio.fixture
async def platform() -> AsyncIterator[Platform]:
    p = Platform(secret=SECRET, token=TOKEN, basic_id=BASIC_ID)
    await p.start()
    yield p
    await p.stop()


@pytest_asyncio.fixture
async def bot_with(clean_redis: str, platform: Platform) -> AsyncIterator[BotWith]:
    """`await bot_with(run_worker=True, **settings)`: a bot on a clean Redis talking to `platform`, with these
    Settings changed from make_settings'. After the test: every bot it started stopped, then no violations."""
    started: list[Bot] = []

    async def start(run_worker: bool = True, **settings: object) -> Bot:
        bot = await start_bot(make_settings(clean_redis, platform, **settings), platform, run_worker)
        started.append(bot)
        return bot

    yield start
    for bot in started:
        await bot.stop()
    assert platform.violations == [], f"LINE protocol violations: {platform.violations}"


@pytest_asyncio.fixture
async def bot(bot_with: BotWith) -> Bot:
    """The bot with the test settings and its worker."""
    return await bot_with()
