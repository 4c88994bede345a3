"""The LINE side misbehaving: stale reply tokens, 500s and 429s, 409 for a retry key already accepted."""
import asyncio
import tempfile
import time
from pathlib import Path

from bot.infra.redis_conn import EmbeddedRedis
from bot.line.client import retry_key
from linesim.platform import new_user_id, text_of
from tests.support.harness import Bot, converse, make_settings, start_bot


async def test_a_token_too_old_to_use_falls_back_to_a_push_with_a_retry_key(bot: Bot) -> None:
    platform = bot.platform
    a = new_user_id()
    event = platform.follow(a)
    event["timestamp"] -= 21 * 60 * 1000  # a redelivery of an event from 21 minutes ago: its token is dead
    event["deliveryContext"]["isRedelivery"] = True
    said = await converse(platform, a, event)
    assert said
    [call] = [c for c in platform.calls if a in c.to]
    assert call.endpoint == "push"
    assert call.headers["X-Line-Retry-Key"] == retry_key(event["webhookEventId"], 0)


async def test_a_token_line_refuses_falls_back_to_a_push(bot: Bot) -> None:
    platform = bot.platform
    a = new_user_id()
    event = platform.follow(a)
    platform.reply_tokens.pop(event["replyToken"])  # LINE says "Invalid reply token"
    assert await converse(platform, a, event)
    assert [c.endpoint for c in platform.calls if a in c.to] == ["push"]


async def test_500s_and_429s_are_retried_and_deliver_once(bot: Bot) -> None:
    platform = bot.platform
    a, b = new_user_id(), new_user_id()
    await converse(platform, a, platform.follow(a))
    platform.fail_next = 2  # the reply: 500, 500, then it goes through
    said = await converse(platform, a, platform.text(a, "ヘルプ"))
    assert len(said) == 1 and "招待" in text_of(said)

    event = platform.follow(b)
    platform.reply_tokens.pop(event["replyToken"])
    platform.throttle_next = 1  # the push after the dead token: 429, then 500, then fine
    platform.fail_next = 0
    assert await platform.send(event) == 200
    await platform.wait_for(lambda: platform.said_to(b))
    await bot.idle()
    pushes = [c for c in platform.calls if c.endpoint == "push" and c.body.get("to") == b]
    assert [c.status for c in pushes] == [429, 200]
    assert len({c.headers["X-Line-Retry-Key"] for c in pushes}) == 1, "a retry must reuse the retry key"
    assert len(platform.said_to(b)) == 1


async def test_409_means_an_earlier_attempt_landed(bot: Bot) -> None:
    platform = bot.platform
    a = new_user_id()
    event = platform.follow(a)
    platform.reply_tokens.pop(event["replyToken"])
    platform.retry_keys.add(retry_key(event["webhookEventId"], 0))  # as if a crashed run had pushed it
    assert await platform.send(event) == 200
    await bot.idle()
    statuses = [c.status for c in platform.calls if c.endpoint == "push"]
    assert statuses == [409]
    _, stats = await bot.admin("GET", "/api/v1/members/" + a)
    assert stats["points"] == 100


async def test_redis_down_means_503_and_recovery_needs_no_restart(platform) -> None:
    with tempfile.TemporaryDirectory() as data:
        server = EmbeddedRedis(Path(data)).start()
        restarted = EmbeddedRedis(Path(data), port=server.port)
        bot = await start_bot(make_settings(server.url, platform), platform)
        try:
            a = new_user_id()
            server.stop()
            assert await platform.send(platform.follow(a)) == 503
            async with bot.http.get(bot.url + "/healthz") as r:
                assert r.status == 503
            restarted.start()
            end = time.monotonic() + 15
            while time.monotonic() < end:
                async with bot.http.get(bot.url + "/healthz") as r:
                    if r.status == 200:
                        break
                await asyncio.sleep(0.1)
            assert r.status == 200
            assert await converse(platform, a, platform.follow(a)), "no answer after Redis came back"
        finally:
            await bot.http.close()
            await bot.runner.cleanup()
            restarted.stop()


async def test_a_slow_line_is_waited_out_without_a_second_message(clean_redis, platform) -> None:
    """LINE answers slower than our timeout: the first reply lands late, the retry meets a used token. The
    customer gets the answer once, by reply (the token was still good), never by a push as well."""
    bot = await start_bot(make_settings(clean_redis, platform, line_timeout_seconds=0.2), platform)
    try:
        a = new_user_id()
        await converse(platform, a, platform.follow(a))
        mark = len(platform.calls)
        platform.delay_seconds = 0.5  # longer than the bot waits: the reply times out but still lands

        async def recover() -> None:
            await asyncio.sleep(0.3)
            platform.delay_seconds = 0.0
        recovering = asyncio.create_task(recover())
        assert await platform.send(platform.text(a, "ヘルプ")) == 200
        await recovering
        await bot.idle()
        await asyncio.sleep(1.0)  # the late attempts finish
        calls = [c for c in platform.calls[mark:] if a in c.to]
        delivered = [c for c in calls if c.status == 200]
        assert [c.endpoint for c in delivered] == ["reply"], "the answer arrives once, by reply"
        assert platform.said_to(a, mark) == delivered[0].body["messages"]
        assert all(c.endpoint == "reply" for c in calls), "no push: the token was usable all along"
        # Retrying a reply whose answer we never saw is how the bot learns it landed ("Invalid reply token"):
        # the stand-in lists those retries; anything else would be a real violation.
        assert [v for v in platform.violations if v != "reply: Invalid reply token"] == []
        platform.violations.clear()
    finally:
        await bot.http.close()
        await bot.runner.cleanup()
