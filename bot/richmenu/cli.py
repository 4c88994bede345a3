"""`python -m bot richmenu`: the sync run from the command line, against the shared Redis or one of its own."""
from __future__ import annotations

import asyncio
from pathlib import Path

from bot.config import Settings
from bot.infra.metrics import Metrics
from bot.infra.redis_conn import EmbeddedRedis, connect
from bot.line.client import LineClient
from bot.richmenu.sync import sync


async def run(settings: Settings) -> int:
    """`python -m bot richmenu`: prints one line per menu."""
    embedded = None
    url = settings.redis_url
    if url is None:
        # never the server's data directory: a second redis-server on the same append-only file (with
        # `serve` running) would corrupt it. Without a shared Redis the counter and ids are kept apart.
        embedded = await asyncio.to_thread(EmbeddedRedis(Path(settings.data_dir) / "richmenu").start)
        url = embedded.url
    redis = connect(url, settings.redis_cluster)
    line = LineClient(settings, Metrics())
    try:
        for applied in await sync(line, redis):
            what = "created" if applied.created else "unchanged"
            gone = f", deleted {len(applied.deleted)} old" if applied.deleted else ""
            print(f"{applied.alias}: {what} ({applied.rich_menu_id}){gone}", flush=True)
    finally:
        await line.close()
        await redis.aclose()
        if embedded:
            await asyncio.to_thread(embedded.stop)
    return 0
