"""The event loop that `serve`, `worker` and `dev` run on: uvloop when it is installed (a dependency, except on
Windows), else asyncio's own. uvloop's loop, transports and scheduling are compiled; measured on this
project's hot path its gain was within the noise (the costly parts are Python that runs the same on either
loop: docs/benchmarks.md), and it stays because it costs nothing and the socket-heavy web side can only gain.

SHOKAI_EVENT_LOOP=asyncio runs asyncio's loop instead: for comparing the two (the webhook benchmark), or to
rule uvloop out when something misbehaves. Not a setting of the product: nothing else reads it."""
from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's new_event_loop, or None (asyncio's default) when it is turned off or not installed."""
    if os.environ.get("SHOKAI_EVENT_LOOP", "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(main) on the loop above, with what was built before it (the imported modules, the SDK's
    models, the settings) frozen out of garbage collection. Those objects live as long as the process; left
    in, every full collection walked them all again, pausing a running `serve` or `worker` for 60-130 ms
    (measured in the webhook benchmark), acks and replies included."""
    gc.collect()
    gc.freeze()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
