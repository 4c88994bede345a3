"""Slow bodies: a client that trickles its request body (slowloris-style) is cut off, not waited for.

aiohttp itself waits for a body as long as the client keeps the connection open. This middleware reads
the whole body of every request that has one within `Settings.body_read_seconds` (the body is then cached,
so the handlers' own `read()` / `json()` return at once) and answers 408 otherwise. Other requests are
never blocked by a slow one: each connection waits on its own.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


def body_timeout_middleware(seconds: float, max_size: int) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        if request.body_exists:
            try:
                await asyncio.wait_for(request.read(), seconds)
            except asyncio.TimeoutError:
                log.warning("request body from %s not received within %.1fs: %s %s, cut off",
                            request.remote, seconds, request.method, request.path)
                response = web.json_response(
                    {"error": {"code": "BODY_TIMEOUT", "message": f"the body did not arrive within {seconds:g} s"}},
                    status=408)
                response.force_close()  # the rest of the trickle is not worth reading
                return response
            except web.HTTPRequestEntityTooLarge:
                log.warning("request body from %s over %d bytes: %s %s", request.remote,
                            max_size, request.method, request.path)
                response = web.json_response(
                    {"error": {"code": "BODY_TOO_LARGE",
                               "message": f"request bodies are at most {max_size} bytes"}},
                    status=413)
                response.force_close()
                return response
        return await handler(request)

    return middleware
