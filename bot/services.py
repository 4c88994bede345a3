"""The service container: what handlers, the worker, the admin API, the pages and the CLI commands use.

`open_services` opens Redis (given or embedded), the LINE client and the program, and closes them in
reverse order; the app, `python -m bot worker`, the rich-menu command and the benchmarks all build
their services through it, so none of them copies the setup.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import privacy
from bot.chat.postback import key_for
from bot.config import Settings
from bot.deliveries.engine import Deliveries
from bot.deliveries.outbound import Outbound
from bot.infra.metrics import Metrics
from bot.infra.redis_conn import EmbeddedRedis, connect, ready
from bot.line.client import LineClient
from bot.line.i18n import Texts
from bot.shopify.admin import ShopifyAdmin
from rewards.catalog import Catalog
from rewards.program import Program
from rewards.rules import Rules


@dataclass
class Services:
    """What handlers may use; built once by the app."""

    settings: Settings
    program: Program
    line: LineClient
    texts: Texts
    redis: Any
    catalog: Catalog
    deliveries: Deliveries  # the durable delivery engine's store (bot/deliveries/)
    outbound: Outbound  # outbound webhooks: endpoints and the events emitted to them

    @property
    def postback_key(self) -> bytes:
        return key_for(self.settings.channel_secret)


@contextlib.asynccontextmanager
async def open_redis(settings: Settings, embedded_dir: str = "redis") -> AsyncIterator[Any]:
    """REDIS_URL's Redis, or else an embedded server with its data in DATA_DIR/<embedded_dir>; closed (and the
    embedded server stopped) on the way out."""
    embedded = None
    url = settings.redis_url
    if url is None:
        embedded = await asyncio.to_thread(EmbeddedRedis(Path(settings.data_dir) / embedded_dir).start)
        url = embedded.url
    redis = connect(url, settings.redis_cluster, pool_size=settings.redis_pool_size,
                    pool_timeout=settings.redis_pool_timeout_seconds)
    try:
        await ready(redis)
        yield redis
    finally:
        await redis.aclose()
        if embedded:
            await asyncio.to_thread(embedded.stop)


@contextlib.asynccontextmanager
async def open_services(settings: Settings, metrics: Metrics, rules: Rules, texts: Texts
                        ) -> AsyncIterator[Services]:
    """Redis, the LINE client and the program, closed in reverse order."""
    async with open_redis(settings) as redis:
        line = LineClient(settings, metrics)
        shop = ShopifyAdmin(settings) if settings.shopify_shop else None  # shopify_discount rewards' codes
        try:
            program = Program(redis, rules)
            deliveries = Deliveries(redis, program.now_ms)
            services = Services(settings=settings, program=program, line=line, texts=texts, redis=redis,
                                catalog=Catalog(redis, program, rules, shop=shop), deliveries=deliveries,
                                outbound=Outbound(redis, deliveries, program.now_ms))
            privacy.register(services)  # the plumbing's share of a member's export and erasure
            yield services
        finally:
            if shop is not None:
                await shop.close()
            await line.close()
