"""Small aiohttp receivers on loopback for the delivery tests: each records what reached it and answers from a
script (a list of statuses, or "hang" to never answer)."""
from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]


@dataclass
class Receiver:
    url: str
    answers: list[int | str] = field(default_factory=list)  # consumed in order; then 200
    got: list[Received] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append(Received(await request.read(), dict(request.headers)))
        answer = self.answers.pop(0) if self.answers else 200
        if answer == "hang":
            await asyncio.sleep(3600)  # cancelled when the client gives up or the server stops
        return web.Response(status=int(answer), text="ok")


@asynccontextmanager
async def receiver(*answers: int | str, path: str = "/hook") -> AsyncIterator[Receiver]:
    app = web.Application()
    r = Receiver("", list(answers))
    app.router.add_post(path, r.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    r.url = f"http://127.0.0.1:{port}{path}"
    try:
        yield r
    finally:
        await runner.cleanup()


def closed_port_url(path: str = "/hook") -> str:
    """A loopback URL nobody listens on: every attempt is a refused connection."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
