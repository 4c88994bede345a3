"""Takeover: a worker that dies is replaced within 5 s, a restarted one takes its own partitions back at once,
and two live processes never go by one name.

The process tests run real `python -m bot worker` processes named by the platform (DYNO) and SIGKILL them.
Their deadlines only bound a failure: the speed comes from the lease settings, checked on their own below.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from bot.chat.context import Ctx
from bot.chat.router import FollowEvent, Router
from bot.config import Settings
from bot.infra import keys
from bot.infra.metrics import Metrics
from bot.intake.stream import partition_of
from bot.intake.worker import Worker, read_block_ms, renew_interval_ms, takeover_bound_ms
from handlers import build_router
from linesim.platform import Platform, new_user_id
from tests.support.harness import Bot, make_settings, start_bot
from tests.support.processes import stop_processes, worker_process

PARTITIONS = 8
HOST = socket.gethostname()
ONE, TWO = f"{HOST}-worker.1", f"{HOST}-worker.2"  # the names DYNO=worker.1 and worker.2 give on this host


async def _until(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    """Poll Redis until `check` answers something true; `timeout` only bounds a failure."""
    end = asyncio.get_running_loop().time() + timeout
    while True:
        got = await check()
        if got:
            return got
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


async def _holders(redis: Any) -> list[str]:
    return [(await redis.get(keys.lease(p)) or b"").decode() for p in range(PARTITIONS)]


def _user_in(partitions: set[int]) -> str:
    return next(u for u in iter(new_user_id, None) if partition_of(u, PARTITIONS) in partitions)


def _welcomes(platform: Platform, uid: str) -> int:
    return sum("友だち追加ありがとう" in m.get("text", "") for m in platform.said_to(uid))


async def _nothing_pending(bot: Bot) -> None:
    redis = bot.services.redis
    pending = [await redis.xpending(keys.stream(p), keys.GROUP) for p in range(PARTITIONS)]
    assert all(p["pending"] == 0 for p in pending), pending


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)  # reaped, as the platform would


# ---- the settings that make it fast ------------------------------------------------------------------
def test_the_default_lease_bounds_a_takeover_under_5_seconds() -> None:
    lease = Settings.lease_ms
    assert takeover_bound_ms(lease) <= 5000
    # a partition's blocking read returns before the next renewal is due: the renewals themselves run in the
    # keep-alive, so a busy or blocked partition never delays them
    assert read_block_ms(lease) < renew_interval_ms(lease)


def test_the_platform_name_is_read_from_dyno() -> None:
    env = {"LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t", "PUBLIC_BASE_URL": "https://x.test"}
    assert Settings.from_env(env).worker_name is None
    assert Settings.from_env({**env, "DYNO": "worker.2"}).worker_name == "worker.2"
    assert Settings.from_env({**env, "DYNO": " web 1/x\n"}).worker_name == "web_1_x"  # safe for a key and a log


# ---- in one process ---------------------------------------------------------------------------------
async def test_a_long_batch_does_not_let_a_live_workers_lease_lapse(bot_with) -> None:
    """A handler busy for three leases: the keep-alive renews the lease meanwhile, so a second worker never
    takes the partition from under it (before, the lease was renewed only between batches)."""
    bot = await bot_with(run_worker=False, stream_partitions=1, lease_ms=600)
    busy, go_on = asyncio.Event(), asyncio.Event()
    slow = Router("slow")

    @slow.on(FollowEvent)
    async def long_welcome(ctx: Ctx) -> None:
        busy.set()
        await go_on.wait()

    first = Worker(bot.services, slow, Metrics(), name="first")
    second = Worker(bot.services, build_router(), Metrics(), name="second")
    tasks = [asyncio.create_task(first.run())]
    try:
        await bot.platform.send(bot.platform.follow(new_user_id()))
        await asyncio.wait_for(busy.wait(), 10)
        tasks.append(asyncio.create_task(second.run()))
        holders = set()
        for _ in range(18):  # three leases, looked at every 100 ms
            holders.add(await bot.services.redis.get(keys.lease(0)))
            await asyncio.sleep(0.1)
        assert holders == {b"first"}
    finally:
        go_on.set()
        await first.stop()
        await second.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert first.handled == 1 and second.handled == 0


async def test_a_name_held_by_a_gone_process_is_taken_back_and_a_live_ones_is_not(bot_with) -> None:
    bot = await bot_with(run_worker=False)
    redis, lease_ms = bot.services.redis, bot.services.settings.lease_ms
    exited = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await exited.wait()
    # a predecessor SIGKILLed and reaped: its name is ours at once
    await redis.set(keys.worker_name("w"), f"{exited.pid}:gone", px=lease_ms)
    restarted = Worker(bot.services, build_router(), Metrics(), name="w")
    await restarted.claim_name()
    assert restarted.name == "w"
    assert await redis.get(keys.worker_name("w")) == restarted.instance.encode()
    # a live process (our parent) holds it: this one gets a name of its own
    await redis.set(keys.worker_name("p"), f"{os.getppid()}:live", px=lease_ms)
    twin = Worker(bot.services, build_router(), Metrics(), name="p")
    await twin.claim_name()
    assert twin.name.startswith("p-") and twin.clock.name == twin.name
    # a live worker in this very process holds it
    again = Worker(bot.services, build_router(), Metrics(), name="w")
    await again.claim_name()
    assert again.name.startswith("w-")


# ---- real processes, SIGKILLed -----------------------------------------------------------------------
async def test_a_sigkilled_workers_partitions_go_to_the_survivor(clean_redis, platform) -> None:
    """(a) worker.1 dies holding half the partitions with events queued: worker.2, with the default lease,
    takes them over and handles the next event; nothing is lost or handled twice."""
    bot = await start_bot(make_settings(clean_redis, platform, stream_partitions=PARTITIONS), platform,
                          run_worker=False)
    default = {"WORKER_LEASE_MS": str(Settings.lease_ms)}
    workers = [worker_process(clean_redis, platform.api_url, DYNO="worker.1", **default),
               worker_process(clean_redis, platform.api_url, DYNO="worker.2", **default)]
    try:
        redis = bot.services.redis

        async def shared() -> set[int]:
            holders = await _holders(redis)
            return set() if sorted(holders) != [ONE] * 4 + [TWO] * 4 else {p for p, h in enumerate(holders) if h == ONE}

        its = await _until(shared, 60, "the two workers sharing the partitions 4 and 4")
        platform.delay_seconds = 0.05  # LINE answering slowly: worker.1 is mid-work when it dies
        users = [_user_in(its) for _ in range(6)]
        for uid in users:
            assert await platform.send(platform.follow(uid)) == 200
        await platform.wait_for(lambda: platform.calls, 10)
        _kill(workers[0])
        late = _user_in(its)
        assert await platform.send(platform.follow(late)) == 200
        # a failure bound only: takeover_bound_ms (4 s) plus the handling is what it takes
        assert await platform.wait_for(lambda: platform.said_to(late), 10), "the survivor did not take over"
        await bot.idle(30)
        await asyncio.sleep(0.3)
        assert await _holders(redis) == [TWO] * PARTITIONS
        assert all(_welcomes(platform, uid) == 1 for uid in [*users, late])
        await _nothing_pending(bot)
        assert platform.violations == []
    finally:
        stop_processes(workers)
        await bot.stop()


async def test_a_restarted_process_with_its_platform_name_takes_its_partitions_back_at_once(clean_redis,
                                                                                            platform) -> None:
    """(b) With a 60 s lease, only the restarted process itself can answer within the bound: its name is in
    every lease it held, so it takes them back at once, and its pending entries with them."""
    bot = await start_bot(make_settings(clean_redis, platform, stream_partitions=PARTITIONS), platform,
                          run_worker=False)
    long = {"WORKER_LEASE_MS": "60000", "DYNO": "worker.1"}
    workers = [worker_process(clean_redis, platform.api_url, **long)]
    try:
        redis = bot.services.redis

        async def all_held() -> bool:
            return await _holders(redis) == [ONE] * PARTITIONS

        await _until(all_held, 60, "worker.1 holding every partition")
        platform.delay_seconds = 0.05
        users = [new_user_id() for _ in range(8)]
        for uid in users:
            assert await platform.send(platform.follow(uid)) == 200
        await platform.wait_for(lambda: platform.calls, 10)
        _kill(workers[0])
        workers.append(worker_process(clean_redis, platform.api_url, **long))
        late = new_user_id()
        assert await platform.send(platform.follow(late)) == 200
        # well under the 60 s lease the dead instance left on every partition
        assert await platform.wait_for(lambda: platform.said_to(late), 30), "the restarted process did not take over"
        await bot.idle(30)
        await asyncio.sleep(0.3)
        assert all(_welcomes(platform, uid) == 1 for uid in [*users, late])
        assert await _holders(redis) == [ONE] * PARTITIONS
        assert (await redis.get(keys.worker_name(ONE))).decode().startswith(f"{workers[1].pid}:")
        await _nothing_pending(bot)
        assert platform.violations == []
    finally:
        stop_processes(workers)
        await bot.stop()


async def test_two_live_processes_given_one_name_do_not_share_it(clean_redis, platform) -> None:
    """(c) Two processes started together with DYNO=worker.1 (as during a platform's restart): one goes by
    the name, the other by the name and a suffix; each partition is held by one of them, and they split."""
    bot = await start_bot(make_settings(clean_redis, platform, stream_partitions=PARTITIONS), platform,
                          run_worker=False)
    workers = [worker_process(clean_redis, platform.api_url, DYNO="worker.1") for _ in range(2)]
    try:
        redis = bot.services.redis

        async def split() -> list[str]:
            names = sorted(n.decode() for n in await redis.zrange(keys.WORKERS, 0, -1))
            counts = Counter(await _holders(redis))
            return names if len(names) == 2 and set(counts) == set(names) and set(counts.values()) == {4} else []

        base, suffixed = await _until(split, 60, "two names sharing the partitions 4 and 4")
        assert base == ONE and suffixed.startswith(f"{ONE}-")
        owner = (await redis.get(keys.worker_name(ONE))).decode()
        assert int(owner.split(":")[0]) in {w.pid for w in workers}
        users = [new_user_id() for _ in range(16)]
        for uid in users:
            assert await platform.send(platform.follow(uid)) == 200
        await bot.idle(30)
        await asyncio.sleep(0.3)
        assert all(_welcomes(platform, uid) == 1 for uid in users)
        assert all(w.poll() is None for w in workers)
        await _nothing_pending(bot)
        assert platform.violations == []
    finally:
        stop_processes(workers)
        await bot.stop()
