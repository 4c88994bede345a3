"""Broadcasts: segments, exactly once per recipient through crashes, 429 storms and the monthly quota,
cancel, dry runs, schedules and personalisation — against real Redis and the LINE stand-in."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import pytest_asyncio

from bot.broadcasts.runner import BroadcastRunner
from bot.config import ASSETS
from bot.infra import keys
from linesim.platform import Call, Platform, new_user_id
from rewards import segments
from rewards.keys import PREFIX
from rewards.rules import load_rules
from rewards.segments import MemberFacts, SegmentError
from tests.support.harness import TOKEN, Bot, BotWith, make_settings, start_bot
from tests.support.processes import stop_processes, worker_process
from tests.support.rules_helpers import Clock

RULES = load_rules(ASSETS / "rules.toml")


# ---- helpers ---------------------------------------------------------------------------------
async def seed(bot: Bot, n: int, *, en: Callable[[int], bool] = lambda i: i % 3 == 0,
               blocked: Callable[[int], bool] = lambda i: i % 10 == 9,
               points: Callable[[int], int] = lambda i: (i % 7) * 100) -> list[str]:
    """n members written through the domain (not n webhooks); LINE's follower list kept in step."""
    program, platform = bot.services.program, bot.platform
    uids = [new_user_id() for _ in range(n)]
    at = int(time.time() * 1000)

    async def one(i: int, uid: str) -> None:
        await program.see(uid, "follow", at, "en" if en(i) else "ja")
        if points(i):
            await program.apply(uid, "seed", points(i), "event", "seed", at)
        if blocked(i):
            await program.see(uid, "unfollow", at)
        else:
            platform.followers.append(uid)

    for start in range(0, n, 16):  # a few at a time: the app's Redis pool is bounded
        await asyncio.gather(*(one(i, uids[i]) for i in range(start, min(n, start + 16))))
    return uids


def received(platform: Platform, text: str | None = None) -> Counter[str]:
    """How many times each user was reached by a multicast (of a message with this text)."""
    got: Counter[str] = Counter()
    for c in platform.calls:
        if c.endpoint == "multicast" and c.status == 200 and (text is None or c.body["messages"][0].get("text") == text):
            got.update(c.to)
    return got


def multicasts(platform: Platform) -> list[Call]:
    return [c for c in platform.calls if c.endpoint == "multicast"]


async def wait_status(bot: Bot, job_id: str, *wanted: str, seconds: float = 30.0) -> dict:
    end = time.monotonic() + seconds
    while True:
        status, job = await bot.admin("GET", f"/api/v1/broadcasts/{job_id}")
        assert status == 200, job
        if job["status"] in wanted or time.monotonic() > end:
            assert job["status"] in wanted, job
            return job
        await asyncio.sleep(0.05)


async def stored_keys(bot: Bot) -> list[bytes]:
    return [k async for k in bot.services.redis.scan_iter(match=f"{PREFIX}:broadcast*")]


@pytest_asyncio.fixture
async def api_only(bot_with: BotWith) -> Bot:
    """The web side alone: tests drive a BroadcastRunner themselves, with a clock they move."""
    return await bot_with(run_worker=False, broadcast_rate=50.0, broadcast_concurrency=1)


async def create(bot: Bot, body: dict) -> str:
    status, answer = await bot.admin("POST", "/api/v1/broadcasts", body)
    assert status == 202, answer
    return str(answer["id"])


# ---- segments, pure ----------------------------------------------------------------------------
NOW = int(datetime(2026, 6, 15, 12, tzinfo=UTC).timestamp() * 1000)
DAY = 86_400_000


def facts(**over: object) -> MemberFacts:
    base: dict[str, object] = dict(
        user_id="U" + "a" * 32, blocked=False, tier="bronze", points=300, referrals_invited=0, referrals_pending=0,
        referrals_completed=0, lang=None, birthday=None, joined_at_ms=NOW - 30 * DAY, last_active_ms=NOW - DAY,
        next_expiry_ms=None)
    base.update(over)
    return MemberFacts(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("segment", "member", "expected"), [
    (None, facts(), True),
    ("everyone", facts(blocked=True), False),
    ({"tier": ["bronze"]}, facts(), True),
    ({"tier": ["gold"]}, facts(), False),
    ({"points_at_least": 300}, facts(), True),
    ({"points_at_least": 301}, facts(), False),
    ({"points_at_most": 300}, facts(), True),
    ({"points_at_most": 299}, facts(), False),
    ({"never_referred": True}, facts(), True),
    ({"never_referred": True}, facts(referrals_invited=1, referrals_pending=1), False),
    ({"referred_at_least": 2}, facts(referrals_invited=2, referrals_completed=2), True),
    ({"referred_at_least": 2}, facts(referrals_invited=2, referrals_completed=1), False),
    ({"has_pending_referrals": True}, facts(referrals_invited=1, referrals_pending=1), True),
    ({"has_pending_referrals": True}, facts(), False),
    ({"points_expiring_within_days": 7}, facts(next_expiry_ms=NOW + 6 * DAY), True),
    ({"points_expiring_within_days": 7}, facts(next_expiry_ms=NOW + 8 * DAY), False),
    ({"points_expiring_within_days": 7}, facts(), False),
    ({"birthday_this_month": True}, facts(birthday="06-30"), True),
    ({"birthday_this_month": True}, facts(birthday="07-01"), False),
    ({"language": ["en"]}, facts(lang="en-US"), True),
    ({"language": ["ja"]}, facts(lang=None), True),
    ({"language": ["en"]}, facts(lang="ja"), False),
    ({"joined_before": "2026-06-01"}, facts(), True),
    ({"joined_after": "2026-06-01T00:00:00+09:00"}, facts(), False),
    ({"active_after": "2026-06-10"}, facts(), True),
    ({"active_before": "2026-06-10"}, facts(), False),
    ({"user_ids": ["U" + "a" * 32]}, facts(), True),
    ({"user_ids": ["U" + "b" * 32]}, facts(), False),
    ({"all": [{"points_at_least": 100}, {"not": {"language": ["en"]}}]}, facts(), True),
    ({"all": [{"points_at_least": 100}, {"not": {"language": ["ja"]}}]}, facts(), False),
    ({"any": [{"tier": ["gold"]}, {"never_referred": True}]}, facts(), True),
    ({"not": {"everyone": True}}, facts(), False),
    ({"user_ids": ["U" + "a" * 32]}, facts(blocked=True), False),
], ids=lambda v: str(v)[:40] if not isinstance(v, MemberFacts) else None)
def test_segment_leaves_and_combinations(segment: object, member: MemberFacts, expected: bool) -> None:
    assert segments.parse(segment, RULES, NOW).matches(member) is expected


def test_one_referral_from_a_milestone() -> None:
    counts = sorted(m.count for m in RULES.milestones)
    if not counts:
        pytest.skip("the default rules have no milestones")
    seg = segments.parse({"milestone_within_one": True}, RULES, NOW)
    assert seg.matches(facts(referrals_completed=counts[0] - 1))
    assert not seg.matches(facts(referrals_completed=counts[0]))


@pytest.mark.parametrize(("segment", "where"), [
    ("gold", "segment"),
    ({"tier": ["platinum-x"]}, "segment.tier"),
    ({"tier": "gold"}, "segment.tier"),
    ({"points_at_least": "5"}, "segment.points_at_least"),
    ({"points_at_least": True}, "segment.points_at_least"),
    ({"never_referred": False}, "segment.never_referred"),
    ({"all": []}, "segment.all"),
    ({"all": [{"tier": ["bronze"]}, {"nope": 1}]}, "segment.all[1].nope"),
    ({"not": {"language": ["english"]}}, "segment.not.language"),
    ({"joined_before": "yesterday"}, "segment.joined_before"),
    ({"user_ids": ["u123"]}, "segment.user_ids"),
    ({"points_expiring_within_days": 400}, "segment.points_expiring_within_days"),
    ({"tier": ["bronze"], "points_at_least": 1}, "segment"),
])
def test_bad_segments_say_where(segment: object, where: str) -> None:
    with pytest.raises(SegmentError) as caught:
        segments.parse(segment, RULES, NOW)
    assert caught.value.where == where


def test_a_segment_too_deep_is_refused() -> None:
    deep: object = {"everyone": True}
    for _ in range(10):
        deep = {"not": deep}
    with pytest.raises(SegmentError, match="deeper"):
        segments.parse(deep, RULES, NOW)


# ---- 2,000 members across segments ------------------------------------------------------------
async def test_two_thousand_members_across_segments_each_get_it_exactly_once(clean_redis: str,
                                                                             platform: Platform) -> None:
    # the stand-in's limit; the bot is set well under it, as it would be against LINE: the pacer spaces the
    # requests' starts, and on a loaded machine they can reach the stand-in bunched (4/s against 5 gave a 429)
    platform.rate_limits["multicast"] = 5
    bot = await start_bot(make_settings(clean_redis, platform, broadcast_rate=3.0, broadcast_concurrency=4,
                                        broadcast_poll_seconds=0.05), platform)
    try:
        uids = await seed(bot, 2000)
        member = {u: i for i, u in enumerate(uids)}
        active = {u for u in uids if member[u] % 10 != 9}
        english = {u for u in active if member[u] % 3 == 0}
        rich_ja = {u for u in active - english if (member[u] % 7) * 100 >= 500}
        chosen = sorted(active)[:7] + [uids[9]]  # a blocked one among the listed ids
        jobs = {
            "everyone": (await create(bot, {"text": "everyone"}), active),
            "english": (await create(bot, {"text": "english", "segment": {"language": ["en"]}}), english),
            "rich_ja": (await create(bot, {"text": "rich_ja", "segment": {
                "all": [{"points_at_least": 500}, {"not": {"language": ["en"]}}]}}), rich_ja),
            "listed": (await create(bot, {"text": "listed", "segment": {"user_ids": chosen}}), set(chosen[:7])),
        }
        for name, (job_id, intended) in jobs.items():
            job = await wait_status(bot, job_id, "done", seconds=60)
            got = received(platform, name)
            assert set(got) == intended, name
            assert set(got.values()) == {1}, f"{name}: someone got it twice"
            assert (job["total"], job["sent"], job["failed"]) == (len(intended), len(intended), 0)
            assert job["batches"] == -(-len(intended) // 500) and job["started_at"] and job["finished_at"]
        assert all(len(c.body["to"]) <= 500 for c in multicasts(platform))
        assert 2 <= platform.max_rate("multicast") <= 5  # paced, by the stand-in's own clock
        status, listing = await bot.admin("GET", "/api/v1/broadcasts")
        assert status == 200 and [j["id"] for j in listing["broadcasts"]] == [j for j, _ in jobs.values()][::-1]
        assert not platform.violations
    finally:
        await bot.http.close()
        await bot.runner.cleanup()


# ---- a worker process killed mid-broadcast --------------------------------------------------------
@pytest.mark.parametrize("kill_after", [1, 3])
async def test_sigkill_mid_broadcast_then_restart_reaches_everyone_once(clean_redis: str, platform: Platform,
                                                                         kill_after: int) -> None:
    bot = await start_bot(make_settings(clean_redis, platform), platform, run_worker=False)
    workers: list[subprocess.Popen] = []
    try:
        uids = await seed(bot, 2000)
        intended = {u for i, u in enumerate(uids) if i % 10 != 9}
        job_id = await create(bot, {"text": "crash"})
        platform.delay_seconds = 1.0  # LINE answering slowly: the kill lands with batches in flight
        workers.append(worker_process(clean_redis, platform.api_url, BROADCAST_RATE="4"))
        await platform.wait_for(lambda: len([c for c in multicasts(platform) if c.status == 200]) >= kill_after, 60)
        os.killpg(workers[0].pid, signal.SIGKILL)
        workers[0].wait(10)
        accepted_before = len([c for c in multicasts(platform) if c.status == 200])
        platform.delay_seconds = 0.0
        workers.append(worker_process(clean_redis, platform.api_url, BROADCAST_RATE="4"))
        job = await wait_status(bot, job_id, "done", seconds=60)
        got = received(platform, "crash")
        assert set(got) == intended and set(got.values()) == {1}
        assert (job["total"], job["sent"]) == (len(intended), len(intended))
        # what the dead worker had sent but not counted went again with the same key, and LINE said 409
        def key(c: Call) -> str:
            return next(v for k, v in c.headers.items() if k.lower() == "x-line-retry-key")

        accepted = [key(c) for c in multicasts(platform) if c.status == 200]
        resent = [key(c) for c in multicasts(platform) if c.status == 409]
        assert len(accepted) == len(set(accepted)) == 4 and set(resent) <= set(accepted)
        assert accepted_before >= kill_after
        assert not platform.violations
    finally:
        stop_processes(workers)
        await bot.http.close()
        await bot.runner.cleanup()


# ---- LINE saying no for a while -----------------------------------------------------------------
async def test_a_429_storm_backs_off_and_loses_nobody(api_only: Bot) -> None:
    bot, platform = api_only, api_only.platform
    uids = await seed(bot, 1200, blocked=lambda i: False)
    job_id = await create(bot, {"text": "storm"})
    clock = Clock()
    runner = BroadcastRunner(bot.services, "storm", clock)
    platform.throttle_next = 12  # longer than one batch's 5 attempts
    await runner.run_due()
    job = await wait_status(bot, job_id, "running")
    assert job["reason"].startswith("LINE_UNAVAILABLE")
    assert await runner.run_due() == 0  # it waits before trying again
    for _ in range(5):
        clock.advance(minutes=1)
        await runner.run_due()
    job = await wait_status(bot, job_id, "done")
    got = received(platform, "storm")
    assert set(got) == set(uids) and set(got.values()) == {1}
    assert len([c for c in multicasts(platform) if c.status == 429]) == 12
    assert job["sent"] == 1200 and "reason" not in job
    assert not platform.violations


async def test_monthly_quota_pauses_then_resume_completes_without_duplicates(api_only: Bot) -> None:
    bot, platform = api_only, api_only.platform
    uids = await seed(bot, 1500, blocked=lambda i: False)
    runner = BroadcastRunner(bot.services, "quota")

    def quota_runs_out(call: Call) -> None:
        if call.endpoint == "multicast" and call.status == 200:
            platform.monthly_limit_reached = True

    platform.listeners.append(quota_runs_out)
    job_id = await create(bot, {"text": "quota"})
    await runner.run_due()
    job = await wait_status(bot, job_id, "paused")
    assert job["reason"].startswith("MONTHLY_LIMIT") and job["sent"] == 500
    assert await runner.run_due() == 0  # paused: off the queue
    platform.listeners.clear()
    platform.monthly_limit_reached = False
    status, answer = await bot.admin("POST", f"/api/v1/broadcasts/{job_id}/resume")
    assert status == 200 and answer["status"] == "queued", answer
    await runner.run_due()
    job = await wait_status(bot, job_id, "done")
    got = received(platform, "quota")
    assert set(got) == set(uids) and set(got.values()) == {1}
    assert job["sent"] == 1500
    status, again = await bot.admin("POST", f"/api/v1/broadcasts/{job_id}/resume")
    assert status == 409 and again["error"]["code"] == "NOT_PAUSED"


async def test_cancel_stops_between_batches(api_only: Bot) -> None:
    bot, platform = api_only, api_only.platform
    await seed(bot, 2000, blocked=lambda i: False)
    runner = BroadcastRunner(bot.services, "cancel")
    job_id = await create(bot, {"text": "cancel"})
    platform.delay_seconds = 0.3  # the first batch is in flight while staff cancel
    running = asyncio.create_task(runner.run_due())
    await platform.wait_for(lambda: platform.request_times.get("multicast"), 10)
    status, view = await bot.admin("POST", f"/api/v1/broadcasts/{job_id}/cancel")
    assert status == 200 and view["status"] == "cancelled", view
    await asyncio.wait_for(running, 10)
    job = await wait_status(bot, job_id, "cancelled")
    assert len(multicasts(platform)) == 1 and job["sent"] == 500  # the batch in flight counted, no more
    assert job["finished_at"] and job["reason"].startswith("CANCELLED")
    assert await runner.run_due() == 0
    status, again = await bot.admin("POST", f"/api/v1/broadcasts/{job_id}/cancel")
    assert status == 409 and again["error"]["code"] == "NOT_CANCELLABLE"
    assert not platform.violations


# ---- what is stored, and when it goes ----------------------------------------------------------
async def test_dry_run_counts_and_previews_and_sends_nothing(api_only: Bot) -> None:
    bot, platform = api_only, api_only.platform
    await seed(bot, 30)
    status, answer = await bot.admin("POST", "/api/v1/broadcasts", {
        "text": "{points}ポイント", "segment": {"language": ["en"]}, "dry_run": True})
    assert status == 200, answer
    assert answer["dry_run"] is True and answer["total"] == len([i for i in range(30) if i % 3 == 0 and i % 10 != 9])
    assert len(answer["preview"]) == 3 and answer["preview"][0]["messages"][0]["text"].endswith("ポイント")
    assert await stored_keys(bot) == []
    assert multicasts(platform) == []


BAD = [
    ({"text": "hi", "segment": {"tier": ["nope"]}}, "INVALID_SEGMENT"),
    ({"text": "hi", "segment": {"all": [{"points_at_least": -1e9}]}}, "INVALID_SEGMENT"),
    ({"text": "hi {nmae}"}, "UNKNOWN_PLACEHOLDER"),
    ({"text": "x" * 4980 + "{invite_link}"}, "INVALID_MESSAGES"),
    ({"text": "hi", "messages": [{"type": "text", "text": "hi"}]}, "INVALID_MESSAGES"),
    ({"messages": [{"type": "image", "originalContentUrl": "http://x.test/a.png",
                    "previewImageUrl": "http://x.test/a.png"}]}, "INVALID_MESSAGES"),
    ({"messages": [{"type": "flex", "altText": "", "contents": {"type": "bubble"}}]}, "INVALID_MESSAGES"),
    ({"text": "hi", "scheduled_at": "tomorrow"}, "INVALID_SCHEDULED_AT"),
    ({"text": "hi", "dry_run": "yes"}, "INVALID_DRY_RUN"),
]


@pytest.mark.parametrize(("body", "code"), BAD, ids=[c for _, c in BAD])
async def test_invalid_broadcasts_are_400_and_store_nothing(api_only: Bot, body: dict, code: str) -> None:
    status, answer = await api_only.admin("POST", "/api/v1/broadcasts", body)
    assert status == 400 and answer["error"]["code"] == code, answer
    assert await stored_keys(api_only) == []


async def test_a_scheduled_broadcast_waits_for_its_time(api_only: Bot) -> None:
    bot, platform = api_only, api_only.platform
    uids = await seed(bot, 20, blocked=lambda i: False)
    clock = Clock()
    runner = BroadcastRunner(bot.services, "clock", clock)
    when = datetime.fromtimestamp(clock.now + 3600, UTC).isoformat()
    job_id = await create(bot, {"text": "later", "scheduled_at": when})
    assert (await wait_status(bot, job_id, "scheduled"))["scheduled_at"]
    clock.advance(minutes=59)
    assert await runner.run_due() == 0
    assert multicasts(platform) == []
    clock.advance(minutes=2)
    assert await runner.run_due() == 1
    await wait_status(bot, job_id, "done")
    assert set(received(platform, "later")) == set(uids)


async def test_quota_shortfall_is_a_warning_in_the_answer(api_only: Bot) -> None:
    bot, platform = api_only, api_only.platform
    await seed(bot, 20, blocked=lambda i: False)
    platform.monthly_quota = 10
    status, answer = await bot.admin("POST", "/api/v1/broadcasts", {"text": "big"})
    assert status == 202, answer
    assert answer["warnings"][0]["code"] == "QUOTA_EXCEEDED" and answer["warnings"][0]["needed"] == 20


# ---- personalisation -------------------------------------------------------------------------
async def test_placeholders_are_filled_per_member_and_identical_texts_share_a_multicast(api_only: Bot) -> None:
    bot, platform = api_only, api_only.platform
    uids = await seed(bot, 6, en=lambda i: False, blocked=lambda i: False, points=lambda i: 100 + 100 * (i % 2))
    runner = BroadcastRunner(bot.services, "names")
    await create(bot, {"text": "残り{points}ポイント"})
    await runner.run_due()
    assert len(multicasts(platform)) == 2  # two distinct texts: one request each
    for i, uid in enumerate(uids):
        assert platform.said_to(uid) == [{"type": "text", "text": f"残り{100 + 100 * (i % 2)}ポイント"}]

    platform.profiles[uids[0]] = {"userId": uids[0], "displayName": "さくら", "language": "ja"}
    mark = len(platform.calls)
    await create(bot, {"text": "{name}、招待はこちら {invite_link}"})
    await runner.run_due()
    assert platform.said_to(uids[0], mark)[0]["text"].startswith("さくらさん、招待はこちら https://shop.example.test/i/")
    assert platform.said_to(uids[1], mark)[0]["text"].startswith("お客さま、")
    links = {platform.said_to(u, mark)[0]["text"].rsplit(" ", 1)[1] for u in uids}
    assert len(links) == 6  # each their own invite link
    assert not platform.violations


async def test_stand_in_flags_a_multicast_over_the_rate_or_over_500(platform: Platform) -> None:
    from aiohttp import ClientSession

    platform.rate_limits["multicast"] = 2
    body = {"to": [new_user_id()], "messages": [{"type": "text", "text": "x"}]}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with ClientSession() as http:
        statuses = []
        for _ in range(3):
            async with http.post(platform.api_url + "/v2/bot/message/multicast", json=body, headers=headers) as r:
                statuses.append(r.status)
        big = {"to": [new_user_id() for _ in range(501)], "messages": body["messages"]}
        platform.rate_limits["multicast"] = 1000
        async with http.post(platform.api_url + "/v2/bot/message/multicast", json=big, headers=headers) as r:
            assert r.status == 400
    assert statuses == [200, 200, 429]
    assert any("requests in one second" in v for v in platform.violations)
    assert len(platform.violations) == 2
    platform.violations.clear()


async def test_a_job_leaves_the_queue_when_done(api_only: Bot) -> None:
    job_id = await create(api_only, {"text": "hi"})
    assert await api_only.services.redis.zscore(keys.BROADCAST_QUEUE, job_id) is not None
    await BroadcastRunner(api_only.services, "q").run_due()
    assert await api_only.services.redis.zscore(keys.BROADCAST_QUEUE, job_id) is None


async def test_a_batch_sent_but_not_counted_goes_again_with_its_key_and_409_counts_as_sent(api_only: Bot) -> None:
    bot, platform = api_only, api_only.platform
    uids = await seed(bot, 1200, blocked=lambda i: False)
    job_id = await create(bot, {"text": "once"})
    first = asyncio.create_task(BroadcastRunner(bot.services, "dies").run_due())

    def die_once_line_took_it(call: Call) -> None:  # LINE accepted batch 0; the runner dies before counting it
        if call.endpoint == "multicast" and call.status == 200:
            platform.listeners.clear()
            first.cancel()

    platform.listeners.append(die_once_line_took_it)
    await asyncio.gather(first, return_exceptions=True)
    assert (await wait_status(bot, job_id, "running"))["sent"] == 0
    await bot.services.redis.delete(keys.broadcast_lease(job_id))  # as if its lease ran out
    await BroadcastRunner(bot.services, "next").run_due()
    job = await wait_status(bot, job_id, "done")
    got = received(platform, "once")
    assert set(got) == set(uids) and set(got.values()) == {1}
    assert [c.status for c in multicasts(platform)] == [200, 409, 200, 200]
    assert job["sent"] == 1200
    assert not platform.violations


async def test_a_segment_the_rules_no_longer_allow_fails_the_job_with_a_reason(api_only: Bot) -> None:
    bot = api_only
    await seed(bot, 3, blocked=lambda i: False)
    job_id = await create(bot, {"text": "gone", "segment": {"tier": ["bronze"]}})
    # as if the shop renamed the tier in its rules between creating and starting the job
    await bot.services.redis.hset(keys.broadcast(job_id), "segment", '{"tier": ["renamed-away"]}')
    await BroadcastRunner(bot.services, "r").run_due()
    job = await wait_status(bot, job_id, "failed")
    assert job["reason"].startswith("INVALID_SEGMENT") and job["sent"] == 0
    assert multicasts(bot.platform) == []
    assert await bot.services.redis.zscore(keys.BROADCAST_QUEUE, job_id) is None


async def test_member_facts_read_referrals_expiry_and_activity_from_redis(clean_redis: str) -> None:
    from tests.support.rules_helpers import program_for

    clock = Clock()
    program = await program_for(clean_redis, RULES, clock)
    try:
        referrer, friend, blocked = new_user_id(), new_user_id(), new_user_id()
        for uid in (referrer, friend, blocked):
            await program.see(uid, "follow", clock.ms)
            await program.welcome_points(uid, clock.ms)
        await program.see(blocked, "unfollow", clock.ms)
        assert (await program.attribute(friend, await program.invite_code(referrer), "op-1")).ok
        clock.advance(days=1)
        await program.see(referrer, "message", clock.ms)
        facts = {f.user_id: f for f in await program.member_facts([referrer, friend, blocked, new_user_id()])}
        assert set(facts) == {referrer, friend, blocked}  # an id never seen is no member
        assert facts[referrer].referrals_pending == 1 and facts[referrer].referrals_invited == 1
        assert facts[friend].referrals_invited == 0 and facts[blocked].blocked
        assert facts[referrer].last_active_ms == clock.ms > facts[friend].last_active_ms
        assert facts[referrer].points == RULES.signup_points
        seg = segments.parse({"has_pending_referrals": True}, RULES, clock.ms)
        assert [u for u, f in facts.items() if seg.matches(f)] == [referrer]
        lots = await program.points_ledger.queued_lots(referrer)
        assert lots and facts[referrer].next_expiry_ms == lots[0].expires_at > clock.ms
    finally:
        await program.redis.aclose()


@pytest.mark.parametrize(("value", "ok"), [("50", True), ("200", True), ("0", False), ("250", False),
                                           ("fast", False), ("nan", False)])
def test_broadcast_rate_comes_from_the_environment_within_lines_limit(value: str, ok: bool) -> None:
    from bot.config import ConfigError, Settings

    env = {"LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t", "PUBLIC_BASE_URL": "https://x.test",
           "BROADCAST_RATE": value}
    if ok:
        assert Settings.from_env(env).broadcast_rate == float(value)
    else:
        with pytest.raises(ConfigError, match="BROADCAST_RATE"):
            Settings.from_env(env)
