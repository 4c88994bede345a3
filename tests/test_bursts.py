"""Bursts: many webhooks at once, as when a broadcast makes thousands of friends tap in the same second.

The burst goes to a real `python -m bot serve` subprocess (web and worker in one process, as deployed, with
the default pool sizes and listen backlog), each event its own signed HTTP request, all in flight together.
Every request must be answered 2xx and every event handled exactly once. Before the Redis pools were
bounded (bot/infra/redis_conn.py), redis-py 8's pool failed at once past 100 connections: 408 of 500
answered 503 here, and handlers failed half-way.

Then the parts: the pool waits for a free connection (up to its timeout) instead of failing, on a single
server and on a cluster alike; and webhooks that arrive together share one intake call per partition.
"""
from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from bot.config import Settings
from bot.infra import keys
from bot.infra.redis_conn import connect, is_cluster_url
from bot.intake.stream import Intake
from linesim.platform import Platform, new_user_id, sign
from rewards import keys as rkeys
from tests.support.harness import SECRET
from tests.support.processes import serve_process, stop_processes

BURST = int(os.environ.get("SHOKAI_TEST_BURST", "500"))  # larger by hand: SHOKAI_TEST_BURST=2000 pytest …


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(log: Path) -> str:
    return log.read_text()[-3000:]


async def _until_healthy(url: str, proc, log: Path, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    async with ClientSession(timeout=ClientTimeout(total=2)) as http:
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise AssertionError(f"`python -m bot serve` exited at start-up:\n{_tail(log)}")
            try:
                async with http.get(url + "/healthz") as r:
                    if r.status == 200:
                        return
            except (ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"`python -m bot serve` did not answer /healthz in {timeout}s:\n{_tail(log)}")


async def test_a_burst_of_500_concurrent_webhooks_is_acked_and_each_event_handled_once(
        clean_redis: str, platform: Platform, tmp_path: Path) -> None:
    port, log = _free_port(), tmp_path / "serve.log"
    proc = serve_process(clean_redis, platform.api_url, port, str(log))
    redis = connect(clean_redis)
    try:
        url = f"http://127.0.0.1:{port}"
        await _until_healthy(url, proc, log)
        users = [new_user_id() for _ in range(BURST)]
        bodies = [platform.payload(platform.follow(uid)) for uid in users]  # one event a request

        # no client-side cap: every request has its own connection and all are in flight at once
        async with ClientSession(connector=TCPConnector(limit=0), timeout=ClientTimeout(total=60)) as http:
            async def post(body: bytes) -> int:
                headers = {"Content-Type": "application/json", "X-Line-Signature": sign(body, SECRET)}
                async with http.post(url + "/callback", data=body, headers=headers) as r:
                    await r.read()
                    return r.status

            statuses = Counter(await asyncio.gather(*(post(body) for body in bodies)))
        assert statuses == {200: BURST}, f"answers to the burst: {dict(statuses)}\n{_tail(log)}"

        def answered() -> bool:
            return len({uid for c in platform.calls if c.status == 200 for uid in c.to}) >= BURST

        await platform.wait_for(answered, 45)
        partitions = range(Settings.stream_partitions)  # `serve` runs with the defaults
        for _ in range(300):  # the last entries are deleted just after their answers
            if not any([await redis.xlen(keys.stream(p)) for p in partitions]):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # anything sent twice would arrive now

        # each user answered exactly once, by reply (the tokens were fresh)
        answers = Counter(uid for c in platform.calls if c.status == 200 for uid in c.to)
        assert answers == Counter({uid: 1 for uid in users}), f"{_tail(log)}"
        assert {c.endpoint for c in platform.calls if c.to} == {"reply"}
        # each event queued once, handled once: one signup entry a member, no retry, nothing dead
        assert [await redis.hget(rkeys.ops(uid), "#n") for uid in users] == [b"1"] * BURST  # the last entry id
        for p in partitions:
            assert await redis.xlen(keys.stream(p)) == 0
            assert await redis.hlen(keys.attempts(p)) == 0, "a handler failed and was retried"
            assert await redis.xlen(keys.dead(p)) == 0
        assert platform.violations == []
        assert "Traceback" not in log.read_text(), _tail(log)
    finally:
        await redis.aclose()
        stop_processes([proc])


async def _pool_is_bounded_and_waits(url: str) -> None:
    """200 commands, scripts and pipelines at once through 4 connections: all answered, none refused."""
    redis = connect(url, pool_size=4, pool_timeout=10)
    try:
        script = redis.register_script("return redis.call('INCR', KEYS[1])")

        async def one(i: int) -> None:
            if i % 3 == 0:
                await script(keys=["shokai:t:{burst}"])
            elif i % 3 == 1:
                async with redis.pipeline(transaction=False) as pipe:
                    pipe.incr("shokai:t:{burst}")
                    pipe.get("shokai:t:{burst}")
                    await pipe.execute()
            else:
                await redis.incr("shokai:t:{burst}")

        await asyncio.gather(*(one(i) for i in range(200)))
        assert int(await redis.get("shokai:t:{burst}")) == 200
    finally:
        await redis.aclose()


async def test_the_pool_makes_a_burst_of_commands_wait_for_a_connection_instead_of_failing(clean_redis: str) -> None:
    probe = connect(clean_redis)
    try:
        if not is_cluster_url(clean_redis):
            before = (await probe.info("clients"))["connected_clients"]
        await _pool_is_bounded_and_waits(clean_redis)
        if not is_cluster_url(clean_redis):  # the four stayed open until the client closed: no more were opened
            # (the server notices the closed sockets a moment later, under load: ask until it has, up to 5 s)
            for _ in range(50):
                now = (await probe.info("clients"))["connected_clients"]
                if now <= before:
                    break
                await asyncio.sleep(0.1)
            assert now <= before
    finally:
        await probe.aclose()


async def test_a_command_waits_for_a_connection_only_up_to_the_pool_timeout(clean_redis: str) -> None:
    """Both connections held (two blocking pops of 1 s): a third pipeline gives up after 0.2 s with a
    ConnectionError (the webhook turns it into 503), and once they are free, pipelines go through again.
    On a single server plain commands never wait for the pool: they go on the client's one shared connection
    (bot/infra/mux.py)."""
    redis = connect(clean_redis, pool_size=2, pool_timeout=0.2)
    try:
        holders = [asyncio.create_task(redis.blpop([f"shokai:t:{{held}}:{i}"], timeout=1)) for i in range(2)]
        await asyncio.sleep(0.05)  # both sent
        with pytest.raises(RedisConnectionError, match="No connection available"):
            async with redis.pipeline(transaction=False) as pipe:
                await pipe.get("shokai:t:{held}:0").execute()
        if not is_cluster_url(clean_redis):  # a cluster has no shared connection: its commands use the pool too
            assert await redis.get("shokai:t:{held}:0") is None  # not on the pool: answered at once
        assert await asyncio.gather(*holders) == [None, None]
        async with redis.pipeline(transaction=False) as pipe:
            assert await pipe.get("shokai:t:{held}:0").execute() == [None]
    finally:
        await redis.aclose()


async def test_webhooks_arriving_together_share_one_intake_call_per_partition(clean_redis: str) -> None:
    redis = connect(clean_redis)
    try:
        intake = Intake(redis, partitions=1)
        platform = Platform(secret=SECRET, token="t")
        events = [platform.follow(new_user_id()) for _ in range(50)]
        again = dict(events[7])  # LINE sends one event twice, in two requests that arrive together
        outcomes = await asyncio.gather(*(intake.enqueue([e], 1_000) for e in [*events, again]))
        # the first makes its call at once; the other 50 waited for it and went together in the next
        assert intake.calls == 2
        assert outcomes.count({"queued": 1, "duplicate": 0}) == 50
        assert outcomes.count({"queued": 0, "duplicate": 1}) == 1
        assert await redis.xlen(keys.stream(0)) == 50
        # a lone webhook afterwards: its own call, at once
        assert await intake.enqueue([platform.follow(new_user_id())], 2_000) == {"queued": 1, "duplicate": 0}
        assert intake.calls == 3 and await redis.xlen(keys.stream(0)) == 51
    finally:
        await redis.aclose()


async def test_when_redis_is_down_every_webhook_of_a_coalesced_call_fails_and_none_hangs() -> None:
    redis = connect("redis://127.0.0.1:1/0", pool_timeout=1)  # nothing listens there
    try:
        intake = Intake(redis, partitions=1)
        platform = Platform(secret=SECRET, token="t")
        outcomes = await asyncio.wait_for(asyncio.gather(
            *(intake.enqueue([platform.follow(new_user_id())], 1_000) for _ in range(20)), return_exceptions=True), 30)
        assert all(isinstance(o, RedisError) for o in outcomes), outcomes
        assert intake.calls == 2
    finally:
        await redis.aclose()
