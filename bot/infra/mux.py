"""One multiplexed connection to a single Redis server, for the hot path's plain commands.

redis-py spends ~140–210 µs of client CPU on a lone command and ~30–60 µs on one inside a pipeline
(docs/benchmarks.md): a pool checkout, a retry wrapper, a parser read loop and a pipeline object each time.
Here a command is packed (hiredis.pack_command), its bytes queued, and the queue written once at the end of
the event loop's turn: every command issued in the same turn goes out in one write, one round trip. Replies
are parsed by a hiredis.Reader in an asyncio Protocol and handed to the waiting callers in the order their
commands were written (Redis answers one connection's commands in order). Each caller then gets what
redis-py would have returned: the client's own response callbacks, and redis-py's exception classes for
error replies (its parser's mapping: NoScriptError, so a Script reloads itself on NOSCRIPT, and so on).

What stays on redis-py's pool (bot/infra/redis_conn.py decides): blocking commands, MULTI/EXEC and explicit
pipelines, pub/sub, commands that change their connection's state, and TLS connections (rediss://)."""
from __future__ import annotations

import asyncio
import copy
import inspect
from collections import deque
from typing import Any, Protocol

import hiredis
from redis._parsers.helpers import decode_info
from redis._parsers.hiredis import _AsyncHiredisParser
from redis.asyncio.connection import BlockingConnectionPool, Connection, UnixDomainSocketConnection
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.connection import HiredisRespSerializer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

_NOT_ENOUGH_DATA = object()  # hiredis's "no whole reply yet" (False and None are real RESP3 replies)
_PUSH = hiredis.PushNotification  # RESP3 out-of-band frames: not answers to a command
# the classes redis-py's parser maps error replies to: ResponseError's, and ConnectionError's for NOAUTH,
# WRONGPASS and LOADING (AuthenticationError, BusyLoadingError), which its connection raises as well
_ERRORS = (ResponseError, RedisConnectionError)
_PLAIN_TYPES = frozenset({bytes, str, int})  # not bool (a subclass of int): redis-py refuses it


def _fail_all(answers: Any, error: Exception) -> None:
    """Each caller still waiting gets its own copy of `error`: one instance raised in many tasks would
    collect all their tracebacks."""
    for answer in answers:
        if isinstance(answer, tuple):
            answer = answer[1]
        if not answer.done():
            answer.set_exception(copy.copy(error))


class Counter(Protocol):
    count: int


class _Connection(asyncio.Protocol):
    """One socket: its reader, and the callers whose commands were written on it, oldest first."""

    def __init__(self, mux: Mux) -> None:
        self.mux = mux
        self.transport: asyncio.Transport | None = None  # set by Mux._connect, None once failed
        self.failed = False
        # redis-py's parser's mapping from error replies to its exception classes (returned, not raised)
        self.reader = hiredis.Reader(protocolError=RedisConnectionError, replyError=_AsyncHiredisParser.parse_error,
                                     notEnoughData=_NOT_ENOUGH_DATA)
        self.waiting: deque[asyncio.Future[Any]] = deque()

    def data_received(self, data: bytes) -> None:
        reader, waiting = self.reader, self.waiting
        reader.feed(data)
        while True:
            try:
                reply = reader.gets()
            except RedisConnectionError as exc:  # not RESP: nothing later on this socket can be trusted
                self.fail(exc)
                return
            if reply is _NOT_ENOUGH_DATA:
                return
            if isinstance(reply, _PUSH):
                continue
            if not waiting:  # a reply to nothing we asked: the stream is out of step
                self.fail(RedisConnectionError("Redis sent a reply no command was waiting for"))
                return
            answer = waiting.popleft()
            if not answer.done():  # else its caller was cancelled: the reply is dropped, the order kept
                answer.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"Error while reading from {self.mux.address}: {exc}" if exc
                                       else "Connection closed by server."))

    def fail(self, error: Exception) -> None:
        """Close the socket; every caller still waiting on it hears `error`."""
        self.failed = True
        self.mux.lost(self)
        if self.transport is not None:
            self.transport.abort()
            self.transport = None
        _fail_all(self.waiting, error)
        self.waiting.clear()


class Mux:
    """The multiplexed connection of one client: opened on first use, opened again on the first command after
    it failed. `count` counts each write, a round trip (bot/infra/redis_conn.py RoundTrips)."""

    @staticmethod
    def fits(pool: BlockingConnectionPool) -> bool:
        """Whether the pool's connections are ones this class can stand in for: plain TCP or a Unix socket,
        a fixed password (or none), bytes replies."""
        kwargs = pool.connection_kwargs
        return (pool.connection_class in (Connection, UnixDomainSocketConnection)  # not TLS, not wrapped yet
                and not kwargs.get("credential_provider") and not kwargs.get("decode_responses")
                and str(kwargs.get("protocol") or 3) in ("2", "3"))

    def __init__(self, pool: BlockingConnectionPool, counter: Counter) -> None:
        kwargs = pool.connection_kwargs
        self.path: str | None = kwargs.get("path")
        self.host: str = kwargs.get("host", "localhost")
        self.port = int(kwargs.get("port", 6379))
        self.address = self.path or f"{self.host}:{self.port}"
        self.db = int(kwargs.get("db") or 0)
        self.username: str | None = kwargs.get("username")
        self.password: str | None = kwargs.get("password")
        self.client_name: str | None = kwargs.get("client_name")
        self.protocol = int(kwargs.get("protocol") or 3)  # redis-py's default: RESP3, which its callbacks expect
        self.connect_timeout: float | None = kwargs.get("socket_connect_timeout")
        self.counter = counter
        encoder = pool.get_encoder()
        self._pack_as_redis_py = HiredisRespSerializer(encode=encoder.encode).pack
        # hiredis encodes str as strict UTF-8 and ints in decimal, as redis-py's encoder does
        self._plain_types = _PLAIN_TYPES if (encoder.encoding.lower().replace("-", ""), encoder.encoding_errors) \
            == ("utf8", "strict") else frozenset()
        self._conn: _Connection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._queued: list[tuple[bytes, asyncio.Future[Any]]] = []  # this turn's commands, not written yet
        self._flush_due = False

    def _pack(self, args: tuple[Any, ...]) -> bytes:
        """The command as redis-py would write it. Its own packer runs each argument through its encoder in
        Python (a third of the client's CPU here): hiredis takes bytes, str and int as they are, so only
        other arguments (floats, memoryviews; bools, which redis-py refuses) go through it."""
        plain = self._plain_types
        for arg in args:
            if type(arg) not in plain:
                return self._pack_as_redis_py(*args)[0]
        name = args[0]
        if (" " if type(name) is str else b" ") in name:  # "SCRIPT LOAD": two words on the wire
            return hiredis.pack_command((*name.split(), *args[1:]))
        return hiredis.pack_command(args)

    async def execute(self, client: Any, args: tuple[Any, ...], options: dict[str, Any], now: bool = False) -> Any:
        """The command's reply as `client` (a redis.asyncio.Redis) would return it. Sent with the others of this
        turn at its end, or at once with those queued before it when `now`."""
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self._queued.append((self._pack(args), answer))
        if self._conn is None:
            if self._connecting is None:  # its end writes what was queued meanwhile
                self._connecting = loop.create_task(self._connect())
        elif now:
            self.flush()
        elif not self._flush_due:
            self._flush_due = True
            loop.call_soon(self.flush)
        reply = await answer
        return self._parse(client, args[0], reply, options)

    def flush(self) -> None:
        """Write every queued command whose caller still waits, in one write."""
        self._flush_due = False
        conn = self._conn
        if conn is None or conn.transport is None or not self._queued:
            return
        queued, self._queued = self._queued, []
        chunks = []
        for packed, answer in queued:
            if not answer.done():  # cancelled before it was written: not sent at all
                chunks.append(packed)
                conn.waiting.append(answer)
        if chunks:
            conn.transport.write(b"".join(chunks))
            self.counter.count += 1

    @staticmethod
    def _parse(client: Any, command_name: Any, reply: Any, options: dict[str, Any]) -> Any:
        """What redis-py's `Redis.parse_response` makes of the reply."""
        if isinstance(reply, _ERRORS):
            if EMPTY_RESPONSE in options and isinstance(reply, ResponseError):
                return options[EMPTY_RESPONSE]
            raise reply
        if options:
            options.pop(EMPTY_RESPONSE, None)
            options.pop("keys", None)
            if NEVER_DECODE in options:  # replies are never decoded here: only INFO's needs it undone
                del options[NEVER_DECODE]
                if command_name == "INFO":
                    reply = decode_info(reply, client.get_encoder())
        callback = client.response_callbacks.get(command_name)
        if callback is None:
            return reply
        result = callback(reply, **options)
        assert not inspect.isawaitable(result), f"{command_name}: an async callback; keep it on the pool"
        return result

    async def _connect(self) -> None:
        """Open the socket and say HELLO (with AUTH), SELECT and the client name in one write; then write what
        was queued meanwhile. A failure goes to each queued caller, and the next command tries again."""
        loop = asyncio.get_running_loop()
        conn = _Connection(self)
        replies: list[asyncio.Future[Any]] = []
        try:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    if self.path:
                        transport, _ = await loop.create_unix_connection(lambda: conn, self.path)
                    else:
                        transport, _ = await loop.create_connection(lambda: conn, self.host, self.port)
                    if conn.failed:  # lost before we had it
                        transport.abort()
                        raise OSError("connection lost at once")
                    conn.transport = transport  # uvloop may call connection_made only after this returns
                    replies = [loop.create_future() for _ in self._handshake()]
                    conn.waiting.extend(replies)
                    conn.transport.write(b"".join(self._pack(command) for command in self._handshake()))
                    self.counter.count += 1
                    for reply in replies:
                        if isinstance(error := await reply, _ERRORS):
                            raise error
                    if conn.failed:  # lost after its last reply, before this task ran on
                        raise OSError("connection lost after the handshake")
            except (OSError, TimeoutError) as exc:
                raise RedisConnectionError(f"Error connecting to {self.address}: {exc or 'timed out'}") from exc
        except BaseException as exc:  # each caller waiting for this connection hears why it did not come
            error = exc if isinstance(exc, Exception) else RedisConnectionError("Connection closed by the client.")
            conn.fail(error)
            for reply in replies:  # a handshake reply after the one that failed: nobody reads it
                if reply.done() and not reply.cancelled():
                    reply.exception()
            queued, self._queued = self._queued, []
            _fail_all(queued, error)
            if error is not exc:  # cancelled (aclose): the task ends cancelled
                raise
        else:
            self._conn = conn
            self.flush()
        finally:
            self._connecting = None

    def _handshake(self) -> list[tuple[Any, ...]]:
        hello: tuple[Any, ...] = ()
        if self.protocol == 3:
            hello = ("HELLO", 3)
            if self.password:
                hello += ("AUTH", self.username or "default", self.password)
        elif self.password:
            hello = ("AUTH", self.username, self.password) if self.username else ("AUTH", self.password)
        commands = [hello] if hello else []
        if self.client_name:
            commands.append(("CLIENT SETNAME", self.client_name))
        if self.db:
            commands.append(("SELECT", self.db))
        return commands or [("PING",)]

    def lost(self, conn: _Connection) -> None:
        """The socket failed or was closed: the next command opens another (now, if some wait to be written)."""
        if self._conn is conn:
            self._conn = None
            if self._queued and self._connecting is None:
                self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def aclose(self) -> None:
        queued, self._queued = self._queued, []  # first: no reconnection for them once the socket is gone
        _fail_all(queued, RedisConnectionError("Connection closed by the client."))
        connecting, conn = self._connecting, self._conn
        if connecting is not None:
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)
        if conn is not None:
            conn.fail(RedisConnectionError("Connection closed by the client."))
