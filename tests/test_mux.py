"""The multiplexed connection (bot/infra/mux.py) behind `connect()`'s single-server client, on a real Redis:
the same replies and errors as plain redis-py, one write per turn of the loop, callers answered in order
(also when one of them was cancelled), every waiting caller told when Redis dies, and a new connection after."""
from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import uvloop
from redis.exceptions import AuthenticationError, DataError, NoScriptError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from bot.infra.mux import Mux
from bot.infra.redis_conn import (
    ROUND_TRIPS,
    AutoPipelined,
    EmbeddedRedis,
    connect,
    redis_server_binary,
    unbatched,
)


async def _spread(r: Any) -> list[Any]:
    """A spread of the commands the bot uses, each reply (or error, as its class and text) in order."""
    out: list[Any] = []

    async def run(call: Any) -> None:
        try:
            out.append(await call)
        except ResponseError as exc:
            out.append((type(exc).__name__, str(exc)))

    await run(r.ping())
    await run(r.set("m:s", "v", ex=100))
    await run(r.set("m:s", "w", nx=True))
    await run(r.get("m:s"))
    await run(r.get("m:none"))
    await run(r.mget(["m:s", "m:none"]))
    await run(r.incr("m:n"))
    await run(r.incrbyfloat("m:f", 0.1))
    await run(r.hset("m:h", mapping={"a": 1, "b": "é", "c": b"\x00\xff"}))
    await run(r.hgetall("m:h"))
    await run(r.hgetall("m:none"))
    await run(r.hmget("m:h", ["a", "zz", "c"]))
    await run(r.hget("m:h", "b"))
    await run(r.hincrby("m:h", "a", 5))
    await run(r.hexists("m:h", "zz"))
    await run(r.zadd("m:z", {"x": 1.5, "y": 2, "z": -3}))
    await run(r.zrangebyscore("m:z", "-inf", "+inf", withscores=True))
    await run(r.zrangebyscore("m:z", 0, 10, start=0, num=1))
    await run(r.zrange("m:z", 0, -1, withscores=True))
    await run(r.zscore("m:z", "x"))
    await run(r.zscore("m:z", "none"))
    await run(r.zpopmin("m:z"))
    await run(r.sadd("m:set", "a", "b"))
    await run(r.smembers("m:set"))
    await run(r.sismember("m:set", "a"))
    await run(r.rpush("m:l", "1", "2", "3"))
    await run(r.lrange("m:l", 0, -1))
    await run(r.expire("m:l", 100))
    await run(r.ttl("m:l"))
    await run(r.exists("m:l", "m:none"))
    await run(r.type("m:h"))
    await run(r.xadd("m:x", {"f": "1"}, id="1-1"))
    await run(r.xadd("m:x", {"f": "2", "g": "3"}, id="2-1"))
    await run(r.xgroup_create("m:x", "g", id="0"))
    await run(r.xgroup_create("m:x", "g", id="0"))  # BUSYGROUP
    await run(r.xreadgroup("g", "c", {"m:x": ">"}, count=10))
    await run(r.xreadgroup("g", "c", {"m:x": ">"}, count=10))  # nothing new
    await run(r.xpending("m:x", "g"))
    pending = await r.xpending_range("m:x", "g", "-", "+", 10)
    out.append([{k: v for k, v in p.items() if k != "time_since_delivered"} for p in pending])  # a clock's
    await run(r.xack("m:x", "g", "1-1"))
    await run(r.xautoclaim("m:x", "g", "c2", 0, "0-0", count=10))
    await run(r.xrange("m:x"))
    await run(r.xlen("m:x"))
    await run(r.xinfo_groups("m:x"))
    await run(r.incr("m:h"))  # WRONGTYPE
    await run(r.execute_command("NOSUCHCOMMAND"))
    return out


@pytest.mark.parametrize("protocol", ["", "?protocol=2"], ids=["resp3", "resp2"])
async def test_replies_and_errors_are_those_of_plain_redis_py(clean_redis: str, protocol: str) -> None:
    await same_replies_as_redis_py(clean_redis + protocol)


async def same_replies_as_redis_py(url: str) -> None:
    plain = aioredis.Redis.from_url(url)
    mux = connect(url)
    assert isinstance(mux, AutoPipelined) and mux._mux is not None
    try:
        expected = await _spread(plain)
        await plain.flushdb()
        got = await _spread(mux)
        assert mux._mux._conn is not None, "the commands went on the multiplexed connection"
        for n, (a, b) in enumerate(zip(got, expected, strict=True)):
            assert (a, type(a)) == (b, type(b)), f"command #{n}"
        info = await mux.info("server")
        assert info["redis_version"] == (await plain.info("server"))["redis_version"]
    finally:
        await plain.aclose()
        await mux.aclose()


def test_commands_are_written_byte_for_byte_as_redis_py_writes_them() -> None:
    pool = aioredis.BlockingConnectionPool.from_url("redis://127.0.0.1:1/0")
    mux, conn = Mux(pool, ROUND_TRIPS), pool.make_connection()
    for args in [("GET", "k"), ("SET", b"k", "v\u00e9", "EX", 100), ("HMGET", "h", "a", b"b", 7), ("SCRIPT LOAD", "return 1"),
                 (b"CONFIG GET", b"maxmemory"), ("ZADD", "z", 1.5, "a", 1e20, "b", -0.1, "c"), ("INCRBY", "n", -2**63),
                 ("SET", "k", memoryview(b"mv")), ("SET", "k", bytearray(b"ba")), ("EVALSHA", "f" * 40, 0)]:
        assert mux._pack(args) == b"".join(conn.pack_command(*args)), args
    for bad in [("SET", "k", True), ("SET", "k", None), ("SET", "k", {"a": 1})]:
        with pytest.raises(DataError):
            conn.pack_command(*bad)
        with pytest.raises(DataError):
            mux._pack(bad)


async def test_a_script_is_loaded_again_after_a_script_flush(clean_redis: str) -> None:
    redis = connect(clean_redis)
    try:
        script = redis.register_script("redis.call('incr', KEYS[1]); return {redis.call('get', KEYS[1]), ARGV[1]}")
        assert await script(keys=["m:k"], args=["a"]) == [b"1", b"a"]  # NOSCRIPT, loaded, run
        await redis.script_flush()
        with pytest.raises(NoScriptError):
            await redis.evalsha(script.sha, 1, "m:k", "b")
        assert await script(keys=["m:k"], args=["b"]) == [b"2", b"b"]  # reloaded on NOSCRIPT
        errors = redis.register_script("return redis.error_reply('NOPE not today')")
        with pytest.raises(ResponseError, match="not today"):
            await errors()
    finally:
        await redis.aclose()


async def test_many_callers_of_one_turn_share_one_write_and_each_gets_its_own_answer(clean_redis: str) -> None:
    redis = connect(clean_redis)
    try:
        await redis.ping()  # the connection and its handshake
        await redis.mset({f"m:{n}": n for n in range(1000)})
        before = ROUND_TRIPS.count
        answers = await asyncio.gather(*(redis.get(f"m:{n}") for n in range(1000)))
        assert answers == [str(n).encode() for n in range(1000)]
        assert ROUND_TRIPS.count - before == 1, "one turn's commands go in one write"

        before = ROUND_TRIPS.count
        assert await redis.get("m:1") == b"1"
        assert await redis.get("m:2") == b"2"
        assert ROUND_TRIPS.count - before == 2, "a lone command goes alone, each awaited one its own"

        # `.direct` writes at once: two in the same turn are two writes
        before = ROUND_TRIPS.count
        assert await asyncio.gather(unbatched(redis).get("m:3"), unbatched(redis).get("m:4")) == [b"3", b"4"]
        assert ROUND_TRIPS.count - before == 2
    finally:
        await redis.aclose()


async def test_each_coroutine_s_commands_run_in_its_order(clean_redis: str) -> None:
    redis = connect(clean_redis)
    try:
        async def chain(n: int) -> list[Any]:
            seen = []
            for step in range(20):
                await redis.rpush(f"m:chain:{n}", step)
                await redis.rpush("m:all", f"{n}:{step}")
                seen.append(await redis.llen(f"m:chain:{n}"))
            return seen

        assert await asyncio.gather(*(chain(n) for n in range(50))) == [list(range(1, 21))] * 50
        for n in range(50):
            assert await redis.lrange(f"m:chain:{n}", 0, -1) == [str(s).encode() for s in range(20)]
        together = [x.decode().split(":") for x in await redis.lrange("m:all", 0, -1)]
        for n in range(50):
            assert [int(s) for c, s in together if c == str(n)] == list(range(20))
    finally:
        await redis.aclose()


async def test_a_cancelled_caller_leaves_the_others_answers_in_step(clean_redis: str) -> None:
    redis = connect(clean_redis)
    try:
        await redis.mset({"m:a": "a", "m:b": "b", "m:c": "c"})
        # written, then cancelled while Redis is busy with it: its reply comes and is dropped
        slow = asyncio.create_task(redis.execute_command("DEBUG", "SLEEP", "0.2"))
        after = [asyncio.create_task(redis.get(k)) for k in ("m:a", "m:b")]
        await asyncio.sleep(0.05)
        slow.cancel()
        assert await asyncio.gather(*after) == [b"a", b"b"]
        assert slow.cancelled()
        assert await redis.get("m:c") == b"c"

        # cancelled before the end of its turn: never written at all
        incr = asyncio.create_task(redis.incr("m:never"))
        await asyncio.sleep(0)  # it runs and queues its command; the write comes after this coroutine's turn
        incr.cancel()
        assert await asyncio.gather(redis.get("m:a"), redis.get("m:never")) == [b"a", None]
        assert incr.cancelled()
    finally:
        await redis.aclose()


async def test_blocking_commands_and_transactions_stay_on_the_pool(clean_redis: str) -> None:
    redis = connect(clean_redis)
    try:
        waiting = asyncio.create_task(redis.blpop(["m:q"], timeout=5))
        await asyncio.sleep(0.05)
        assert await redis.set("m:x", "1") is True, "the shared connection is not held by a blocking read"
        assert not waiting.done()
        await redis.rpush("m:q", "v")
        assert await waiting == (b"m:q", b"v")
        async with redis.pipeline(transaction=True) as pipe:
            assert await pipe.incr("m:t").get("m:t").execute() == [1, b"1"]
    finally:
        await redis.aclose()


async def test_when_redis_dies_the_waiting_callers_hear_it_and_the_next_command_reconnects(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path).start()
    redis = connect(server.url)
    try:
        await redis.set("m:k", "v")
        slow = asyncio.create_task(redis.execute_command("DEBUG", "SLEEP", "5"))
        behind = [asyncio.create_task(redis.get("m:k")) for _ in range(10)]
        await asyncio.sleep(0.2)  # written, Redis asleep on the first
        assert server.proc is not None
        server.proc.kill()  # SIGKILL
        for task in [slow, *behind]:
            with pytest.raises(RedisConnectionError):
                await task
        with pytest.raises(RedisConnectionError):  # down: a new connection fails, and says so
            await redis.get("m:k")
        server.stop()  # reaps the killed server and lets go of its data directory's lock
        server = EmbeddedRedis(tmp_path, port=server.port).start()
        assert await redis.get("m:k") == b"v"  # back (from the append-only file), on a new connection
        assert await asyncio.gather(*(redis.incr("m:n") for _ in range(10))) == list(range(1, 11))
    finally:
        await redis.aclose()
        server.stop()


async def test_closing_the_client_closes_its_connection(clean_redis: str) -> None:
    redis = connect(clean_redis)
    plain = aioredis.Redis.from_url(clean_redis)
    try:
        await redis.client_setname("not-the-mux")  # on a pool connection: it names that connection only
        await redis.ping()
        mux = redis._mux
        assert mux is not None and mux._conn is not None
        clients = len(await plain.client_list())
        await redis.aclose()
        assert mux._conn is None
        await asyncio.sleep(0.1)
        assert len(await plain.client_list()) == clients - 2  # the shared connection and the pool's one
    finally:
        await plain.aclose()


def _unix_socket_server(sock: Path, password: str) -> subprocess.Popen[bytes]:
    """A redis-server on a Unix socket only (no TCP port), with a password."""
    server = subprocess.Popen([redis_server_binary(), "--port", "0", "--unixsocket", str(sock), "--dir", str(sock.parent),
                               "--save", "", "--requirepass", password],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return server


async def test_a_unix_socket_a_password_and_a_database_from_the_url(tmp_path: Path) -> None:
    sock = tmp_path / "redis.sock"
    server = _unix_socket_server(sock, "s3cret")
    try:
        redis = connect(f"unix://:s3cret@{sock}?db=3")
        plain = aioredis.Redis(unix_socket_path=str(sock), password="s3cret", db=3)
        try:
            assert isinstance(redis, AutoPipelined) and redis._mux is not None
            await redis.set("m:k", "v")
            assert redis._mux._conn is not None, "on the multiplexed connection"
            assert await plain.get("m:k") == b"v", "in database 3: SELECT came with the handshake"
            assert await redis.get("m:k") == b"v"
        finally:
            await redis.aclose()
            await plain.aclose()
        for url in (f"unix://:wrong@{sock}?db=3", f"unix://{sock}?db=3"):  # WRONGPASS, NOAUTH
            wrong = connect(url)
            try:
                with pytest.raises(AuthenticationError):
                    await wrong.get("m:k")
            finally:
                await wrong.aclose()
    finally:
        server.terminate()
        server.wait()

# `serve` and `worker` run on uvloop (bot/infra/event_loop.py), whose transports call back at other moments
# than asyncio's (connection_made, for one, comes after create_connection returns): the same tests on it
ON_UVLOOP = [same_replies_as_redis_py, test_a_script_is_loaded_again_after_a_script_flush,
             test_many_callers_of_one_turn_share_one_write_and_each_gets_its_own_answer,
             test_each_coroutine_s_commands_run_in_its_order, test_a_cancelled_caller_leaves_the_others_answers_in_step,
             test_blocking_commands_and_transactions_stay_on_the_pool, test_closing_the_client_closes_its_connection]


@pytest.mark.parametrize("test", ON_UVLOOP, ids=lambda test: test.__name__.removeprefix("test_"))
def test_on_uvloop(test: Any, clean_redis: str) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(test(clean_redis))


@pytest.mark.parametrize("test", [test_when_redis_dies_the_waiting_callers_hear_it_and_the_next_command_reconnects,
                                  test_a_unix_socket_a_password_and_a_database_from_the_url],
                         ids=lambda test: test.__name__.removeprefix("test_"))
def test_on_uvloop_with_a_server_of_its_own(test: Any, tmp_path: Path) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(test(tmp_path))
