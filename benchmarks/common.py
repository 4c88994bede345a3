"""What the benchmarks share: the Redis they measure against."""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from bot.infra.redis_conn import EmbeddedRedis, connect


@contextlib.asynccontextmanager
async def redis_url(prefix: str = "shokai-bench-") -> AsyncIterator[str]:
    """REDIS_URL, which must name an empty database (the benchmark flushes it), else an embedded redis-server
    with the bot's settings in a temporary directory, stopped and removed afterwards."""
    url = os.environ.get("REDIS_URL")
    if url:
        client = connect(url)
        try:
            if await client.dbsize():
                raise SystemExit("REDIS_URL names a database that is not empty; the benchmark flushes it")
        finally:
            await client.aclose()
        yield url
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as data:
        server = EmbeddedRedis(Path(data)).start()
        try:
            yield server.url
        finally:
            server.stop()
