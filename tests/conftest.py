"""Fixtures: a real Redis (embedded, or REDIS_URL), the LINE stand-in, and the bot served on loopback."""
from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import redis as sync_redis
from aiohttp import ClientSession, web

from bot.app import SERVICES, WORKER, create_app
from bot.config import Settings
from bot.infra.redis_conn import EmbeddedRedis, cluster_node_url, is_cluster_url
from bot.services import Services
from linesim.platform import Platform, new_user_id

SECRET = "test-channel-secret"
TOKEN = "test-access-token"
BASIC_ID = "@shokai-test"
PUBLIC = "https://shop.example.test"
ADMIN = "test-admin-token"
HANG_REPORT_SECONDS = float(os.environ.get("SHOKAI_HANG_REPORT_SECONDS", "120"))


# SHOKAI_TEST_CLUSTER=1: the session runs on a three-master Redis Cluster of its own, and only the modules
# below (the ones that drive the whole bot through it) run; `make test` runs them a second time this way.
CLUSTER = os.environ.get("SHOKAI_TEST_CLUSTER") == "1"
CLUSTER_MODULES = frozenset({
    "test_story", "test_referrals", "test_redelivery", "test_catalog", "test_rules_engine", "test_crash",
    "test_admin_api", "test_line_faults", "test_cluster", "test_ledger_properties",
    "test_admin_api_more", "test_staff", "test_stats", "test_broadcasts", "test_notices", "test_profile",
    "test_flex_cards", "test_richmenu", "test_hot_path", "test_ledger_codec",
    "test_health",
})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in CLUSTER_MODULES:
            item.add_marker(pytest.mark.cluster)


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
        from tests.cluster import LocalCluster

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
    from tests.slot_guard import guard

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


def make_settings(redis_url: str, platform: Platform, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        channel_secret=SECRET, channel_access_token=TOKEN, public_base_url=PUBLIC,
        line_api_base_url=platform.api_url, redis_url=redis_url, line_basic_id=BASIC_ID, admin_token=ADMIN,
        stream_partitions=4, lease_ms=1000, line_retry_base_seconds=0.01, line_timeout_seconds=5.0)
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def platform() -> AsyncIterator[Platform]:
    p = Platform(secret=SECRET, token=TOKEN, basic_id=BASIC_ID)
    await p.start()
    yield p
    await p.stop()


@dataclass
class Bot:
    url: str
    app: web.Application
    runner: web.AppRunner
    platform: Platform
    http: ClientSession

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    async def admin(self, method: str, path: str, json: object = None, token: str | None = ADMIN,
                    headers: dict | None = None) -> tuple[int, object]:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        async with self.http.request(method, self.url + path, json=json, headers=sent) as r:
            try:
                return r.status, await r.json(content_type=None)
            except ValueError:
                return r.status, await r.text()

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until the worker has finished everything queued."""
        redis = self.services.redis
        settings = self.services.settings
        from bot.infra import keys

        end = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < end:
            lengths = [await redis.xlen(keys.stream(p)) for p in range(settings.stream_partitions)]
            if not any(lengths):
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"the worker did not finish in {timeout}s: stream lengths {lengths}")


async def start_bot(settings: Settings, platform: Platform, run_worker: bool = True) -> Bot:
    app = create_app(settings, run_worker=run_worker)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    platform.bot_url = url + "/callback"
    return Bot(url=url, app=app, runner=runner, platform=platform, http=ClientSession())


@pytest_asyncio.fixture
async def bot(clean_redis: str, platform: Platform) -> AsyncIterator[Bot]:
    b = await start_bot(make_settings(clean_redis, platform), platform)
    yield b
    await b.http.close()
    await b.runner.cleanup()
    assert platform.violations == [], f"LINE protocol violations: {platform.violations}"


async def converse(platform: Platform, uid: str, event: dict, timeout: float = 10.0) -> list[dict]:
    """Send one event from a user; return what reached that user because of it."""
    mark = len(platform.calls)
    assert await platform.send(event) == 200
    await platform.wait_for(lambda: platform.said_to(uid, mark), timeout)
    await asyncio.sleep(0.1)  # a second message of the same answer
    return platform.said_to(uid, mark)


def pack(data: object) -> str:
    """Postback data as the bot would have packed it for a button (signed with the test secret)."""
    from bot.chat.postback import key_for
    return data.pack(key_for(SECRET))  # type: ignore[attr-defined]


__all__ = ["pack", "Bot", "converse", "new_user_id", "make_settings", "start_bot", "WORKER", "PUBLIC", "ADMIN", "SECRET"]
