"""What the benchmark work changed: compact ledger entries read back whole, and workers sharing partitions."""
import asyncio

from bot.app import WORKER
from bot.infra import keys as bot_keys
from bot.intake.worker import Worker
from handlers import build_router
from linesim.platform import new_user_id
from rewards import keys
from tests.support.harness import Bot, converse
from tests.test_rules_engine import make, new_member  # noqa: F401 (make is a fixture)


async def test_a_compact_entry_reads_back_with_every_field(make) -> None:  # noqa: F811
    program, clock = await make()
    uid = await new_member(program, clock)
    await program.apply(uid, "event:review:1", 40, "event", "events.review", clock.ms, note="thanks")
    await program.spend(uid, "claim:c1", 15, "coffee")
    earn, spend = await program.ledger(uid)
    raw = await program.redis.hget(keys.ops(uid), "1")
    assert raw.startswith(b"25|+") and b";event|~s.review|" in raw  # its lot in front (25 left, expiry in days)
    assert b"event:review:1" not in raw  # positional, op not repeated
    assert earn["id"] == 1 and earn["op"] == "event:review:1" and earn["note"] == "thanks"
    assert earn["delta"] == earn["avail"] == 40 and earn["state"] == "available" and earn["balance"] == 40
    assert earn["expires_at"] > clock.ms  # from its lot
    assert spend["id"] == 2 and spend["op"] == "claim:c1" and spend["delta"] == -15 and spend["state"] == "done"
    assert "expires_at" not in spend
    [line, _] = await program.recent_ledger(uid, 2)
    assert line.delta == -15 and line.balance == 25


async def test_two_workers_share_the_partitions_and_handle_everything_once(bot: Bot) -> None:
    platform, services = bot.platform, bot.services
    first = bot.app[WORKER]
    second = Worker(services, build_router(), first.metrics, name="second-worker")
    task = asyncio.create_task(second.run())
    try:
        share = -(-services.settings.stream_partitions // 2)

        def shared() -> bool:
            return 0 < len(second._held) <= share and 0 < len(first._held) <= share
        assert await platform.wait_for(shared, 15), (first._held, second._held)
        assert await services.redis.zcard(bot_keys.WORKERS) == 2

        users = [new_user_id() for _ in range(6)]
        for uid in users:
            assert await converse(platform, uid, platform.follow(uid))
        await bot.idle()
        replies = [c for c in platform.calls if c.endpoint == "reply" and c.status == 200]
        assert len(replies) == len(users)  # one welcome each, whoever held the partition
        assert first.handled + second.handled >= len(users)
    finally:
        await second.stop()
        await asyncio.wait_for(task, 10)
    assert await services.redis.zscore(bot_keys.WORKERS, "second-worker") is None  # gone on stop
    assert not platform.violations


async def test_the_stand_in_checks_held_bodies_as_strictly_as_inline_ones() -> None:
    """The webhook benchmark lets the stand-in check bodies between stages: a bad reply is then answered 200
    but still found, by the same checks, when the held bodies are checked."""
    from aiohttp import ClientSession

    from linesim.platform import Platform
    from tests.support.harness import BASIC_ID, SECRET, TOKEN

    bad = [{"type": "text"}]  # no text: LINE's schema refuses it
    too_long = [{"type": "text", "text": "あ" * 5001}]  # within the schema, over LINE's documented limit
    good = [{"type": "text", "text": "ok"}]
    for check_later in (False, True):
        platform = Platform(secret=SECRET, token=TOKEN, basic_id=BASIC_ID, check_later=check_later)
        await platform.start()
        try:
            uid = new_user_id()
            statuses = []
            async with ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                for messages in (bad, too_long, good):
                    event = platform.text(uid, "hi")
                    async with http.post(platform.api_url + "/v2/bot/message/reply",
                                         json={"replyToken": event["replyToken"], "messages": messages}) as r:
                        statuses.append(r.status)
            if check_later:
                assert statuses == [200, 200, 200] and platform.violations == []
                assert platform.check_held() == 3 and platform.held_for_check == []
            else:
                assert statuses == [400, 400, 200]
            assert len(platform.violations) == 2, platform.violations
            assert "schema" in platform.violations[0] and "5000" in platform.violations[1].replace(",", "")
        finally:
            await platform.stop()
