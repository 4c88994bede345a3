"""`python -m bot richmenu`: the sync run from the command line, against the shared Redis or one of its own."""
from __future__ import annotations

from bot.config import Settings
from bot.infra.metrics import Metrics
from bot.line.client import LineClient
from bot.richmenu.sync import sync
from bot.services import open_redis


async def run(settings: Settings) -> int:
    """`python -m bot richmenu`: prints one line per menu."""
    # Without REDIS_URL, never the server's data directory: a second redis-server on the same append-only
    # file (with `serve` running) would corrupt it. The counter and ids are then kept apart.
    async with open_redis(settings, embedded_dir="richmenu") as redis:
        line = LineClient(settings, Metrics())
        try:
            for applied in await sync(line, redis):
                what = "created" if applied.created else "unchanged"
                gone = f", deleted {len(applied.deleted)} old" if applied.deleted else ""
                print(f"{applied.alias}: {what} ({applied.rich_menu_id}){gone}", flush=True)
        finally:
            await line.close()
    return 0
