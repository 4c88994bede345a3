"""The webhook→reply hot path with fewer round trips keeps its guarantees: the sighting hands back the
language, the sent marker written "done" inside finish.lua still stops a second send, and a lost script cache
does not leave an event unfinished."""
import asyncio

from bot.chat import context, conversation
from bot.chat.context import Ctx
from bot.chat.router import FollowEvent, Router
from bot.infra import keys
from bot.infra.metrics import Metrics
from bot.intake.stream import partition_of
from bot.intake.worker import Worker
from handlers import build_router
from linesim.platform import new_user_id
from rewards import buckets
from tests.support.harness import make_settings, start_bot


async def test_the_sighting_gives_the_language_its_own_choice_first(clean_redis, platform) -> None:
    bot = await start_bot(make_settings(clean_redis, platform), platform, run_worker=False)
    try:
        program = bot.services.program
        uid = new_user_id()
        assert await program.sighting(uid, "follow", 1, "en") == (True, "en")
        assert await program.sighting(uid, "message", 2) == (False, "en")
        await program.set_language(uid, "ja")
        assert await program.sighting(uid, "message", 3) == (False, "ja")
        assert await program.language(uid) == "ja"
        assert await program.sighting(new_user_id(), "message", 4) == (True, None)
        assert await buckets.is_member(bot.services.redis, uid)
    finally:
        await bot.http.close()
        await bot.runner.cleanup()


async def test_a_handler_failing_after_its_reply_does_not_send_again(clean_redis, platform, monkeypatch) -> None:
    """The marker of a reply that went out is written before the retry, not only with the finish: the
    retry, its token now stale, would otherwise push the same answer again."""
    bot = await start_bot(make_settings(clean_redis, platform), platform, run_worker=False)
    try:
        runs = 0
        flaky = Router("flaky")

        @flaky.on(FollowEvent)
        async def answer_then_fail(ctx: Ctx) -> None:
            nonlocal runs
            runs += 1
            await ctx.answer({"type": "text", "text": "welcome"})
            if runs == 1:
                monkeypatch.setattr(context, "REPLY_TOKEN_FRESH_SECONDS", 0)  # the retry comes too late to reply
                raise RuntimeError("after the reply")

        uid = new_user_id()
        worker = Worker(bot.services, flaky, Metrics(), name="flaky")
        task = asyncio.create_task(worker.run())
        try:
            assert await platform.send(platform.follow(uid)) == 200
            await bot.idle(timeout=20)
        finally:
            await worker.stop()
            await asyncio.wait_for(task, 10)
        assert runs == 2 and worker.handled == 1
        replies = [c for c in platform.calls if c.endpoint in ("reply", "push") and uid in c.to]
        assert len(replies) == 1 and len(platform.said_to(uid)) == 1
        assert platform.violations == []
    finally:
        await bot.http.close()
        await bot.runner.cleanup()


async def test_the_marker_goes_with_the_finish_and_survives_a_script_flush(clean_redis, platform) -> None:
    bot = await start_bot(make_settings(clean_redis, platform), platform, run_worker=False)
    try:
        redis = bot.services.redis
        worker = Worker(bot.services, build_router(), Metrics(), name="only")
        task = asyncio.create_task(worker.run())
        uid = new_user_id()
        try:
            follow = platform.follow(uid)
            assert await platform.send(follow) == 200
            await bot.idle()
            p = partition_of(uid, bot.services.settings.stream_partitions)
            assert await redis.get(keys.sent(p, follow["webhookEventId"], 0)) == b"done"
            assert 0 < await redis.ttl(keys.sent(p, follow["webhookEventId"], 0)) <= context.SENT_MARKER_TTL
            await redis.script_flush()  # as after a Redis restart: the finish (with the markers) meets NOSCRIPT
            text = platform.text(uid, "ヘルプ")
            assert await platform.send(text) == 200
            await bot.idle()
            assert await redis.get(keys.sent(p, text["webhookEventId"], 0)) == b"done"
        finally:
            await worker.stop()
            await asyncio.wait_for(task, 10)
        assert worker.handled == 2
        pending = [await redis.xpending(keys.stream(p), keys.GROUP) for p in range(4)]
        assert all(p["pending"] == 0 for p in pending)
        replies = [c for c in platform.calls if c.endpoint == "reply" and c.status == 200 and uid in c.to]
        assert len(replies) == 2  # the welcome and the help, each once
        assert platform.violations == []
    finally:
        await bot.http.close()
        await bot.runner.cleanup()


async def test_the_sighting_reads_the_pending_step_along(clean_redis, platform) -> None:
    bot = await start_bot(make_settings(clean_redis, platform), platform, run_worker=False)
    try:
        program, redis = bot.services.program, bot.services.redis
        uid = new_user_id()
        step = keys.conversation_step(uid)
        assert await program.sighting_and_step(uid, "follow", 1, step_key=step) == (True, None, None)
        await conversation.begin(redis, uid, "nickname")
        assert await program.sighting_and_step(uid, "message", 2, "en", step_key=step) == (False, "en", "nickname")
        assert await program.sighting_and_step(uid, "message", 3) == (False, "en", None)  # not asked: not read
    finally:
        await bot.http.close()
        await bot.runner.cleanup()
