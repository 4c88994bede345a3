"""Serving the app: a listening site whose connections must deliver each request's line and headers in time.

aiohttp bounds a request *body* only as far as the handler waits for it (bot/web/http.py's body timeout does
that) and an idle keep-alive connection by `keepalive_timeout`, but nothing bounds the time a client takes
to send the request line and headers: a connection that trickles one header line every few seconds stays
open (slowloris). `Site` is aiohttp's TCP site with one change: each connection's protocol (aiohttp's own
RequestHandler, which does all the HTTP) is wrapped in `HeaderDeadline`, which only watches the bytes go by:

- a new connection must complete its first request's headers within `header_seconds`;
- on a kept-alive connection, once the first byte of the next request arrives, its headers must complete
  within `header_seconds`. Idle time between requests is not counted (that is keepalive_timeout's);
- a body is not counted either (the body timeout's), nor the time a handler takes.

Past the deadline the connection gets `408 Request Timeout` (when it had sent part of a request; one that
sent nothing is just closed) and is closed, with one warning. `run()` is `web.run_app(sock=…)` with this site.

The site's connections also answer a request aiohttp cannot parse (its own 400, made before any middleware
or on_response_prepare runs) without the `Server` header that named Python's and aiohttp's versions:
`AnonymousErrors`.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from aiohttp import hdrs, web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from bot.infra import event_loop
from bot.infra.signals import until_stopped

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 75.0  # an idle kept-alive connection is closed after this (aiohttp's run_app default)


def _timeout_response() -> bytes:
    body = b"the request headers did not arrive in time"
    return (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"X-Content-Type-Options: nosniff\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


class _Anonymous(web.Response):
    """A response without the Server header aiohttp gives every response as it prepares it (for the app's
    own responses bot/web/http.py security_headers removes it; this is for those no app hook sees). aiohttp
    has no public hook for it: tests/test_http_hygiene.py checks the answer, so a change there fails loudly."""

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        self.headers.popall(hdrs.SERVER, None)


class AnonymousErrors(RequestHandler):
    """aiohttp's connection handler, whose own error answers (a 400 for a request it cannot parse, made by
    `handle_error` with no middleware or on_response_prepare on the way) carry no Server header, and nosniff
    as every other answer does: the same status, body and headers otherwise, and the connection still closes."""

    __slots__ = ()

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        made = super().handle_error(request, status, exc, message)
        if not isinstance(made, web.Response):  # not what aiohttp makes today: leave it alone
            return made
        answer = _Anonymous(status=made.status, body=made.body, headers=made.headers)
        answer.headers.setdefault(hdrs.X_CONTENT_TYPE_OPTIONS, "nosniff")
        answer.force_close()
        return answer


class HeaderDeadline(asyncio.Protocol):
    """One connection: aiohttp's RequestHandler does the HTTP; this forwards every call to it and keeps the
    header deadline. It reads three fields of the handler (aiohttp has no public hook for "a request's
    headers are complete"): `_request_count` (requests parsed on this connection), `_messages` (parsed and
    not yet handled, with each one's body stream) and `_request_in_progress`; tests/test_http_hygiene.py
    checks the behaviour, so an aiohttp that changes them fails there, not silently."""

    def __init__(self, inner: RequestHandler, seconds: float) -> None:
        self._inner = inner
        self._seconds = seconds
        self._timer: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None  # the last parsed request's body: its end begins the next request
        self._partial = False  # bytes of a request arrived since the timer was armed

    # -- the deadline
    def _arm(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._partial = False

    def _between_requests(self) -> bool:
        """Whether the next byte from the client starts a new request (the last request's body is complete)."""
        return not self._inner._upgraded and (self._body is None or self._body.is_eof())

    def _expired(self) -> None:
        self._timer = None
        inner = self._inner
        transport = inner.transport
        if transport is None:
            return
        if inner._request_in_progress or inner._messages:
            self._arm()  # a request on this connection is being answered: never cut into its response
            return
        peer = transport.get_extra_info("peername")
        if self._partial:
            log.warning("request headers from %s not complete within %.1f s; answered 408 and closed",
                        peer[0] if peer else "?", self._seconds)
            transport.write(_timeout_response())
        else:
            log.info("connection from %s sent no request within %.1f s; closed", peer[0] if peer else "?",
                     self._seconds)
        inner.force_close()

    # -- asyncio.Protocol, forwarded
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        inner = self._inner
        fresh = self._between_requests()  # before parsing: these bytes begin (or continue) a request line
        parsed = inner._request_count
        inner.data_received(data)
        if inner._request_count != parsed:  # a request's headers are complete
            self._disarm()
            self._body = inner._messages[-1][1] if inner._messages else None
        elif inner._upgraded:
            self._disarm()
        elif fresh and data:
            self._partial = True
            self._arm()

    def eof_received(self) -> None:
        self._inner.eof_received()  # None: the transport closes itself (aiohttp's handler does the same)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class Site(web.BaseSite):
    """web.SockSite (on a socket bound beforehand, bot/web/listen.py) whose connections have a header
    deadline (HeaderDeadline)."""

    __slots__ = ("_sock", "_header_seconds")

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, *, header_seconds: float,
                 backlog: int = 128) -> None:
        super().__init__(runner, backlog=backlog)
        self._sock, self._header_seconds = sock, header_seconds

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        handlers = self._runner.server
        assert handlers is not None, "runner.setup() comes first"
        seconds, loop = self._header_seconds, asyncio.get_running_loop()
        # as handlers() makes aiohttp's RequestHandler, with the runner's settings (keep-alive, access log)
        self._server = await loop.create_server(
            lambda: HeaderDeadline(AnonymousErrors(handlers, loop=loop, **handlers._kwargs), seconds),
            sock=self._sock, backlog=self._backlog)


async def serve(app: web.Application, *, sock: socket.socket, header_seconds: float,
                ready: Callable[[], None], backlog: int = 128) -> None:
    """Serve `app` on `sock` until SIGTERM or SIGINT, then shut down as web.run_app does (the app's cleanup
    included)."""
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=KEEPALIVE_SECONDS)
    await runner.setup()
    try:
        await Site(runner, sock, header_seconds=header_seconds, backlog=backlog).start()
        ready()
        await until_stopped()
    finally:
        await runner.cleanup()


def run(app: web.Application, *, sock: socket.socket, header_seconds: float,
        ready: Callable[[], None] = lambda: None, backlog: int = 128) -> None:
    """`python -m bot serve`: web.run_app(sock=…) with the header deadline, on uvloop (bot/infra/event_loop.py);
    `backlog` connections may wait to be accepted (a burst of webhooks arrives at once: Settings.http_backlog)."""
    event_loop.run(serve(app, sock=sock, header_seconds=header_seconds, ready=ready, backlog=backlog))
