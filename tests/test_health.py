"""/healthz says whether the work is being done: live workers, queued events and the oldest one's age.

The status code stays the contract's (200 when Redis answers, 503 otherwise); dead workers or a stuck
queue show as "status": "degraded" in the body, and as gauges in /metrics.
"""
import math
import tempfile
from pathlib import Path

import pytest
import pytest_asyncio

from bot.config import ConfigError, Settings
from bot.infra import keys
from bot.infra.redis_conn import EmbeddedRedis
from bot.web import health
from linesim.platform import Platform, new_user_id
from tests.support.harness import Bot, BotWith, converse, make_settings, start_bot


async def healthz(bot: Bot) -> tuple[int, dict]:
    async with bot.http.get(bot.url + "/healthz") as r:
        return r.status, await r.json()


async def gauges(bot: Bot) -> dict[str, float]:
    async with bot.http.get(bot.url + "/metrics") as r:
        assert r.status == 200
        text = await r.text()
    names = ("shokai_workers_live", "shokai_events_queued", "shokai_events_oldest_queued_seconds")
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.startswith(names)}


async def stop(bot: Bot) -> None:
    await bot.http.close()
    await bot.runner.cleanup()


@pytest_asyncio.fixture
async def idle_bot(bot_with: BotWith) -> Bot:
    """The web part alone: events are queued and nobody works on them (every worker process died)."""
    return await bot_with(run_worker=False)


async def test_ok_with_the_worker_running(bot: Bot) -> None:
    platform = bot.platform
    uid = new_user_id()
    assert await converse(platform, uid, platform.follow(uid))
    await bot.idle()
    status, body = await healthz(bot)
    assert status == 200
    assert body == {"status": "ok", "redis": "ok", "workers": 1, "queued": 0, "oldest_queued_seconds": 0.0,
                    "reasons": []}
    assert await gauges(bot) == {"shokai_workers_live": 1.0, "shokai_events_queued": 0.0,
                                 "shokai_events_oldest_queued_seconds": 0.0}


async def test_events_waiting_with_no_worker_is_degraded_but_still_200(idle_bot: Bot) -> None:
    platform = idle_bot.platform
    assert await platform.send(platform.follow(new_user_id())) == 200
    status, body = await healthz(idle_bot)
    assert status == 200  # Redis answers: the contract's 200, the body tells the rest
    assert body["status"] == "degraded" and body["reasons"] == [health.NO_LIVE_WORKER]
    assert body["redis"] == "ok" and body["workers"] == 0 and body["queued"] == 1
    assert body["oldest_queued_seconds"] >= 0
    figures = await gauges(idle_bot)
    assert figures["shokai_workers_live"] == 0 and figures["shokai_events_queued"] == 1
    assert [c for c in platform.calls if c.endpoint in ("reply", "push")] == []  # nobody worked on it


async def test_nothing_queued_and_no_worker_is_ok(idle_bot: Bot) -> None:
    """A web process with its workers apart and nothing to do is healthy: only waiting work needs a worker."""
    status, body = await healthz(idle_bot)
    assert status == 200 and body["status"] == "ok" and body["workers"] == 0 and body["queued"] == 0


async def test_the_oldest_event_waiting_too_long_is_degraded_even_with_a_live_worker(idle_bot: Bot) -> None:
    redis, settings = idle_bot.services.redis, idle_bot.services.settings
    platform = idle_bot.platform
    assert await platform.send(platform.follow(new_user_id()), platform.follow(new_user_id())) == 200
    firsts = [await redis.xrange(keys.stream(p), count=1) for p in range(settings.stream_partitions)]
    oldest_ms = min(int(entries[0][0].split(b"-")[0]) for entries in firsts if entries)

    async def at(now_ms: int) -> health.WorkHealth:
        await redis.zadd(keys.WORKERS, {"a-worker-that-beats": now_ms})  # alive, but not getting through
        return await health.read(redis, settings, now_ms=now_ms)

    limit_ms = int(settings.health_max_queue_age_seconds * 1000)
    fresh = await at(oldest_ms + limit_ms)
    assert (fresh.status, fresh.workers, fresh.queued) == ("ok", 1, 2)
    assert fresh.oldest_queued_seconds == settings.health_max_queue_age_seconds  # at the limit, not past it
    stale = await at(oldest_ms + limit_ms + 1000)
    assert stale.status == "degraded" and stale.reasons == (health.QUEUE_STALE,)
    assert stale.oldest_queued_seconds == settings.health_max_queue_age_seconds + 1

    # a heartbeat older than a lease is a gone worker, though it is still in the zset
    gone = await health.read(redis, settings, now_ms=oldest_ms + limit_ms + 1000 + settings.lease_ms)
    assert gone.workers == 0 and gone.reasons == (health.NO_LIVE_WORKER, health.QUEUE_STALE)


async def test_the_age_limit_is_a_setting(clean_redis: str, platform: Platform) -> None:
    bot = await start_bot(make_settings(clean_redis, platform, health_max_queue_age_seconds=5.0), platform,
                          run_worker=False)
    try:
        assert await platform.send(platform.follow(new_user_id())) == 200
        redis, settings = bot.services.redis, bot.services.settings
        firsts = [await redis.xrange(keys.stream(p), count=1) for p in range(settings.stream_partitions)]
        (oldest_ms,) = [int(entries[0][0].split(b"-")[0]) for entries in firsts if entries]
        assert (await health.read(redis, settings, now_ms=oldest_ms + 5000)).reasons == (health.NO_LIVE_WORKER,)
        assert (await health.read(redis, settings, now_ms=oldest_ms + 6000)).reasons == (
            health.NO_LIVE_WORKER, health.QUEUE_STALE)
    finally:
        await stop(bot)
    assert not platform.violations


async def test_redis_down_is_503_and_the_gauges_say_unknown(platform: Platform) -> None:
    with tempfile.TemporaryDirectory() as data:
        server = EmbeddedRedis(Path(data)).start()
        bot = await start_bot(make_settings(server.url, platform), platform, run_worker=False)
        try:
            status, body = await healthz(bot)
            assert status == 200 and body["status"] == "ok"
            server.stop()
            status, body = await healthz(bot)
            assert status == 503 and body["status"] == "unavailable"
            figures = await gauges(bot)  # /metrics still answers: its counters are this process's
            assert figures and all(math.isnan(value) for value in figures.values())
        finally:
            await stop(bot)
            server.stop()
    assert not platform.violations


GOOD_ENV = {"LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t", "PUBLIC_BASE_URL": "https://x.test"}


@pytest.mark.parametrize(("value", "ok"), [("60", True), ("2.5", True), ("0", False), ("-1", False),
                                           ("soon", False), ("nan", False), ("inf", False)])
def test_the_age_limit_comes_from_the_environment(value: str, ok: bool) -> None:
    env = {**GOOD_ENV, "HEALTH_MAX_QUEUE_AGE_SECONDS": value}
    if ok:
        assert Settings.from_env(env).health_max_queue_age_seconds == float(value)
    else:
        with pytest.raises(ConfigError, match="HEALTH_MAX_QUEUE_AGE_SECONDS"):
            Settings.from_env(env)


def test_the_age_limit_defaults_to_a_minute() -> None:
    assert Settings.from_env(dict(GOOD_ENV)).health_max_queue_age_seconds == 60.0
