"""Waiting for the process to be told to stop: what `serve`, `worker` and `dev` do once they are running."""
from __future__ import annotations

import asyncio
import signal


async def until_stopped() -> None:
    """Return on SIGTERM (the platform stopping the process) or SIGINT (Ctrl-C)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
