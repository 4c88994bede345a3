"""What an ordinary member's text costs in Redis commands on the worker's hot path: the pending
conversation step comes with the sighting, the staff set is not asked unless a staff route's own words
match, and the sent marker is not read on an event's first run, only written "done" inside the finish script. Every command goes to the real
Redis; the client is only watched (its `execute_command` recorded, then called as usual)."""
from __future__ import annotations

from typing import Any

from bot.infra import keys
from bot.infra.redis_conn import ROUND_TRIPS, connect
from bot.intake.stream import partition_of
from handlers.profile import AskNickname
from linesim.platform import Platform, new_user_id
from tests.support.harness import Bot, BotWith, converse, make_settings, pack, start_bot


def watch(redis: Any, monkeypatch: Any) -> list[tuple[str, ...]]:
    seen: list[tuple[str, ...]] = []
    real = redis.execute_command

    async def recording(*args: Any, **options: Any) -> Any:
        seen.append(tuple(a.decode() if isinstance(a, bytes) else str(a) for a in args))
        return await real(*args, **options)

    monkeypatch.setattr(redis, "execute_command", recording)
    return seen


def naming(commands: list[tuple[str, ...]], key: str) -> list[tuple[str, ...]]:
    return [c for c in commands if key in c[1:]]


async def test_a_member_text_reads_neither_the_staff_set_nor_the_step_on_its_own(
        clean_redis: str, platform: Platform, monkeypatch: Any) -> None:
    bot = await start_bot(make_settings(clean_redis, platform), platform)
    try:
        uid = new_user_id()
        await converse(platform, uid, platform.follow(uid))
        commands = watch(bot.services.redis, monkeypatch)
        text = platform.text(uid, "ヘルプ")
        assert await converse(platform, uid, text)
        await bot.idle()
        assert naming(commands, keys.STAFF) == [], "no SISMEMBER of the staff set for a member's text"
        step = keys.conversation_step(uid)
        seen = [c for c in naming(commands, step) if c[0] in ("EVALSHA", "EVAL")]
        assert seen and naming(commands, step) == seen, "the step is read only inside the sighting script"
        marker = keys.sent(partition_of(uid, bot.services.settings.stream_partitions), text["webhookEventId"], 0)
        # read for the first time, the event can have no marker yet: none is read, it is written by the finish
        assert [c[0] for c in naming(commands, marker)] == ["EVALSHA"], "only the finish names the marker"
        assert await bot.services.redis.get(marker) == b"done"
        assert platform.violations == []
    finally:
        await bot.http.close()
        await bot.runner.cleanup()


async def test_a_pending_nickname_step_read_with_the_sighting_still_takes_the_next_text(
        clean_redis: str, platform: Platform) -> None:
    """The step's value comes from the sighting; a step begun by one event is seen by the next."""
    bot = await start_bot(make_settings(clean_redis, platform), platform)
    try:
        uid = new_user_id()
        await converse(platform, uid, platform.follow(uid))
        await converse(platform, uid, platform.postback(uid, pack(AskNickname())))
        said = await converse(platform, uid, platform.text(uid, "ミカ"))
        member = await bot.services.program.member(uid)
        assert member is not None and member.nickname == "ミカ", said
        assert await bot.services.redis.exists(keys.conversation_step(uid)) == 0
        assert platform.violations == []
    finally:
        await bot.http.close()
        await bot.runner.cleanup()


def test_the_staff_check_comes_last_on_every_staff_route() -> None:
    """So a member's text asks the staff set only when a staff route's own words or step already match."""
    from bot.chat.staff import is_staff
    from handlers import build_router

    staff_routes = [r for r in build_router().routes if is_staff in r.filters]
    assert len(staff_routes) >= 10
    assert all(r.filters[-1] is is_staff for r in staff_routes), [r.handler.__name__ for r in staff_routes
                                                                  if r.filters[-1] is not is_staff]


# ---- the round-trip counter (shokai_redis_round_trips_total) ------------------------------
async def round_trips_metric(bot: Bot) -> float:
    async with bot.http.get(bot.url + "/metrics") as r:
        assert r.status == 200
        text = await r.text()
    return next(float(line.split()[1]) for line in text.splitlines()
                if line.startswith("shokai_redis_round_trips_total "))


async def test_a_command_and_a_whole_pipeline_are_one_round_trip_each(clean_redis: str) -> None:
    redis = connect(clean_redis)
    try:
        # the connections and their handshakes, before counting: commands go on the client's shared
        # connection, pipelines on one of its pool's (bot/infra/mux.py)
        await redis.ping()
        async with redis.pipeline(transaction=False) as pipe:
            await pipe.ping().execute()
        before = ROUND_TRIPS.count
        await redis.set("rt:a", "1")
        assert ROUND_TRIPS.count - before == 1
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(5):
                pipe.incr(f"rt:{n}")
            await pipe.execute()
        assert ROUND_TRIPS.count - before == 2
        async with redis.pipeline(transaction=True) as pipe:
            await pipe.incr("rt:a").get("rt:a").execute()  # MULTI … EXEC goes out in one write too
        assert ROUND_TRIPS.count - before == 3
    finally:
        await redis.aclose()


async def test_the_webhook_and_the_worker_show_in_the_round_trip_metric(bot_with: BotWith,
                                                                         platform: Platform) -> None:
    web_only = await bot_with(run_worker=False)  # nothing in the background: the count is exact
    warm = new_user_id()
    assert await platform.send(platform.follow(warm)) == 200  # loads intake.lua (a NOSCRIPT retry)
    before = await round_trips_metric(web_only)
    assert await platform.send(platform.text(warm, "ヘルプ")) == 200
    # the intake script's one call, and the second scrape's own read of the queue gauges
    assert await round_trips_metric(web_only) - before == 2
    await web_only.stop()

    bot = await bot_with()
    uid = new_user_id()
    await converse(platform, uid, platform.follow(uid))
    before = await round_trips_metric(bot)
    assert await converse(platform, uid, platform.text(uid, "ヘルプ"))
    await bot.idle()
    # at least the intake, the sighting, the sent marker and the finish (the worker's polling adds more)
    assert await round_trips_metric(bot) - before >= 4
