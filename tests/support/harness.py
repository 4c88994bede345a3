"""The bot under test: its settings against the LINE stand-in, serving it on loopback, and talking to it.

Test modules import from here; the fixtures that use it are in tests/support/fixtures.py (kept apart, because
pytest would also register any fixture a test module imports).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import ClientSession, web

from bot.app import SERVICES, create_app
from bot.config import Settings
from bot.services import Services
from bot.web.listen import bound_port, listening_socket
from bot.web.server import Site
from linesim.platform import Platform
from tests.support.rules_helpers import TEST_RULES

SECRET = "test-channel-secret"
TOKEN = "test-access-token"
BASIC_ID = "@shokai-test"
PUBLIC = "https://shop.example.test"
ADMIN = "test-admin-token"


def make_settings(redis_url: str, platform: Platform, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        channel_secret=SECRET, channel_access_token=TOKEN, public_base_url=PUBLIC,
        line_api_base_url=platform.api_url, redis_url=redis_url, line_basic_id=BASIC_ID, admin_token=ADMIN,
        stream_partitions=4, lease_ms=1000, line_retry_base_seconds=0.01, line_timeout_seconds=5.0,
        rewards_config=TEST_RULES)
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


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

    async def stop(self) -> None:
        await self.http.close()
        await self.runner.cleanup()


async def start_bot(settings: Settings, platform: Platform, run_worker: bool = True) -> Bot:
    app = create_app(settings, run_worker=run_worker)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = listening_socket("127.0.0.1", 0, "")
    await Site(runner, sock, header_seconds=settings.header_read_seconds).start()  # as `serve` listens
    url = f"http://127.0.0.1:{bound_port(sock)}"
    platform.bot_url = url + "/callback"
    return Bot(url=url, app=app, runner=runner, platform=platform, http=ClientSession())


# the `bot_with` fixture: `await bot_with(run_worker=True, **settings)` -> a started Bot
BotWith = Callable[..., Awaitable[Bot]]


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
