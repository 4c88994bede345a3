"""A worker killed between receiving and finishing an event: after restart the event is handled exactly once."""
import asyncio
import os
import re
import signal
import subprocess

import pytest

from bot.chat.context import Ctx
from bot.chat.router import FollowEvent, Router
from bot.infra import keys
from bot.infra.metrics import Metrics
from bot.intake.worker import Worker
from handlers import build_router
from linesim.platform import new_user_id, text_of
from tests.support.harness import make_settings, start_bot
from tests.support.processes import stop_processes, worker_process


async def test_a_worker_dying_mid_event_leaves_it_to_the_next_worker(clean_redis, platform) -> None:
    bot = await start_bot(make_settings(clean_redis, platform, lease_ms=600), platform, run_worker=False)
    try:
        services = bot.services
        inside, never = asyncio.Event(), asyncio.Event()
        dying = Router("dying")

        @dying.on(FollowEvent)
        async def half_a_welcome(ctx: Ctx) -> None:
            await ctx.program.welcome_points(ctx.user_id, ctx.event.timestamp, ctx.event_id)  # points land…
            inside.set()
            await never.wait()  # …and the process dies before the answer and the ack

        a = new_user_id()
        first = Worker(services, dying, Metrics(), name="first")
        task = asyncio.create_task(first.run())
        assert await platform.send(platform.follow(a)) == 200
        await asyncio.wait_for(inside.wait(), 10)
        task.cancel()  # killed: no answer, no ack, the lease left to expire
        await asyncio.gather(task, return_exceptions=True)
        assert platform.said_to(a) == []

        second = Worker(services, build_router(), Metrics(), name="second")
        task = asyncio.create_task(second.run())
        try:
            await platform.wait_for(lambda: platform.said_to(a), 10)
            await bot.idle()
            await asyncio.sleep(0.2)
        finally:
            await second.stop()
            await asyncio.wait_for(task, 10)
        welcome = platform.said_to(a)
        # one welcome, and the same one the first run would have sent: it still tells of the signup points
        assert len(welcome) == 1 and "100" in text_of(welcome)
        _, member = await bot.admin("GET", f"/api/v1/members/{a}")
        assert member["points"] == 100
        assert second.handled == 1
        assert platform.violations == []
    finally:
        await bot.http.close()
        await bot.runner.cleanup()


@pytest.mark.parametrize("kill_after_calls", [3, 9, 17])
async def test_sigkill_of_a_worker_process_loses_and_repeats_nothing(clean_redis, platform, kill_after_calls) -> None:
    """Real processes: `python -m bot worker` is SIGKILLed mid-stream, a new one finishes the work."""
    bot = await start_bot(make_settings(clean_redis, platform, stream_partitions=8), platform, run_worker=False)
    workers: list[subprocess.Popen] = []
    try:
        platform.delay_seconds = 0.03  # LINE answering slowly widens the window a kill can land in
        users = [new_user_id() for _ in range(12)]
        for uid in users:
            assert await platform.send(platform.follow(uid), platform.text(uid, "招待")) == 200
        workers.append(worker_process(clean_redis, platform.api_url))
        await platform.wait_for(lambda: len(platform.calls) >= kill_after_calls, 30)
        os.killpg(workers[0].pid, signal.SIGKILL)
        workers[0].wait(10)
        workers.append(worker_process(clean_redis, platform.api_url))
        await bot.idle(timeout=60)
        await asyncio.sleep(0.3)
        for uid in users:
            said = platform.said_to(uid)
            welcomes = [m for m in said if "友だち追加ありがとう" in m.get("text", "")]
            invites = [m for m in said if re.search(r"/i/[A-Z0-9]{8}", text_of([m]))]  # the invite card
            assert len(welcomes) == 1 and len(invites) == 1, f"{uid}: {said}"
            _, member = await bot.admin("GET", f"/api/v1/members/{uid}")
            assert member["points"] == 100
        pending = [await bot.services.redis.xpending(keys.stream(p), keys.GROUP) for p in range(8)]
        assert all(p["pending"] == 0 for p in pending)
        assert platform.violations == []
    finally:
        stop_processes(workers)
        await bot.http.close()
        await bot.runner.cleanup()
