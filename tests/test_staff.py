"""Staff in LINE: non-staff get the ordinary answers for every staff word and button, with nothing changed
and the audit log untouched; staff compose a broadcast, adjust points, use a coupon, look members up, see
the numbers and decide reviewed referrals, each audited."""
from __future__ import annotations

import asyncio
import re

import pytest
import pytest_asyncio

from bot.broadcasts.service import Broadcasts
from bot.chat import conversation
from bot.infra import keys
from handlers.staff_broadcast import ConfirmBroadcast, PickSegment
from handlers.staff_review import ApproveReferral, VoidReferral
from linesim.platform import new_user_id
from rewards import keys as rkeys
from rewards.errors import ProgramError
from tests.support.harness import PUBLIC, Bot, BotWith, converse, pack
from tests.test_admin_api import follow, points_of, wait_for_broadcast
from tests.test_admin_api_more import review_referral

STAFF = "U" + "5" * 32


@pytest_asyncio.fixture
async def staff_bot(bot_with: BotWith) -> Bot:
    return await bot_with(staff_user_ids=frozenset({STAFF}))


async def say(bot: Bot, uid: str, text: str) -> list[dict]:
    return await converse(bot.platform, uid, bot.platform.text(uid, text))


async def tap(bot: Bot, uid: str, data: str) -> list[dict]:
    return await converse(bot.platform, uid, bot.platform.postback(uid, data))


def body(messages: list[dict]) -> str:
    """The texts the bot said (without the quick-reply labels)."""
    return "\n".join(m.get("text", "") for m in messages)


def postbacks(messages: list[dict]) -> list[dict]:
    items = messages[-1].get("quickReply", {}).get("items", [])
    return [i["action"] for i in items if i["action"]["type"] == "postback"]


async def audit(bot: Bot) -> list[dict]:
    entries = await bot.services.redis.xrange(rkeys.AUDIT)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


def ja(bot: Bot, key: str, **values: object) -> str:
    return bot.services.texts.get("ja", key, **values)


STAFF_WORDS = ["配信する", "配信", "broadcast", "今日の数字", "数字", "today", "numbers", "stats", "会員を探す",
               "会員検索", "member", "find member", "クーポン使用", "use coupon", "審査待ち", "審査", "review",
               "調整 nobody +100 test", "会員 nobody", "クーポン使用 sometoken"]


async def test_non_staff_get_the_fallback_for_every_staff_word_and_button(staff_bot: Bot) -> None:
    bot = staff_bot
    a, b = await review_referral(bot)
    customer = new_user_id()
    await follow(bot, customer)
    points = {u: await points_of(bot, u) for u in (a, b, customer)}
    before = await audit(bot)
    for word in STAFF_WORDS:
        assert body(await say(bot, customer, word)) == ja(bot, "fallback"), word
    for data in (PickSegment("d" * 16, "all"), ConfirmBroadcast("d" * 16, "all"), ApproveReferral(b),
                 VoidReferral(b)):
        assert body(await tap(bot, customer, pack(data))) == ja(bot, "button_not_valid"), data
    # "coupon" alone is also a customer word: they get their (empty) coupon list, as before; and cancel is the
    # customers' own way out of a profile step
    for word in ("キャンセル", "やめる", "cancel"):
        assert body(await say(bot, customer, word)) == ja(bot, "nothing_to_cancel"), word
    assert body(await say(bot, customer, "coupon")) == ja(bot, "coupons_empty")
    await bot.idle()
    assert await audit(bot) == before
    assert {u: await points_of(bot, u) for u in (a, b, customer)} == points
    assert await bot.services.redis.hget(rkeys.referral(b), "status") == b"review"
    assert await bot.services.redis.llen(keys.BROADCAST_QUEUE) == 0
    assert not await bot.services.redis.exists(keys.conversation_step(customer))


async def test_staff_compose_a_broadcast_and_confirm_once(staff_bot: Bot) -> None:
    bot = staff_bot
    members = [new_user_id() for _ in range(2)]
    for uid in members:
        await follow(bot, uid)
    assert ja(bot, "staff_broadcast_ask") in body(await say(bot, STAFF, "配信する"))
    picked = await say(bot, STAFF, "週末セール開催中!")
    assert "週末セール開催中!" in body(picked)
    [segment] = [p for p in postbacks(picked) if p["label"].startswith(("全員", "Everyone"))]
    assert segment["label"] == "全員(3人)"  # the two customers and the staff member
    confirm = await tap(bot, STAFF, segment["data"])
    [send] = postbacks(confirm)
    assert send["label"] == "3人に配信する"
    done = await tap(bot, STAFF, send["data"])
    assert "配信を受け付けました" in body(done)
    assert ja(bot, "staff_broadcast_stale") in body(await tap(bot, STAFF, send["data"]))  # the draft is spent
    [entry] = [e for e in await audit(bot) if e["what"] == "broadcast"]
    assert entry["who"] == STAFF and entry["total"] == "3" and entry["status"] == "queued"
    job = await wait_for_broadcast(bot, entry["job"])
    assert job["status"] == "done" and job["sent"] == 3
    multicasts = [c for c in bot.platform.calls if c.endpoint == "multicast"]
    assert len(multicasts) == 1 and multicasts[0].body["messages"][0]["text"] == "週末セール開催中!"


async def test_a_second_tap_on_confirm_creates_no_second_job(staff_bot: Bot) -> None:
    bot = staff_bot
    await say(bot, STAFF, "broadcast")
    [segment] = [p for p in postbacks(await say(bot, STAFF, "Sale!")) if p["label"].startswith(("全員", "Everyone"))]
    [send] = postbacks(await tap(bot, STAFF, segment["data"]))
    # two taps arrive together, before the first one's answer
    mark = len(bot.platform.calls)
    await bot.platform.send(bot.platform.postback(STAFF, send["data"]), bot.platform.postback(STAFF, send["data"]))
    await bot.platform.wait_for(lambda: len(bot.platform.said_to(STAFF, mark)) >= 2)
    await bot.idle()
    assert len([e for e in await audit(bot) if e["what"] == "broadcast"]) == 1


@pytest.mark.parametrize("word", ["stop", "中止", "やめる", "cancel"])
async def test_any_cancel_word_in_the_broadcast_step_cancels_and_sends_nothing(staff_bot: Bot, word: str) -> None:
    bot = staff_bot
    await say(bot, STAFF, "配信する")
    assert body(await say(bot, STAFF, word)) == ja(bot, "staff_cancelled")
    assert await conversation.pending(bot.services.redis, STAFF) is None
    assert "全員" not in body(await say(bot, STAFF, "週末セール"))  # ordinary text again, not a draft
    assert await bot.services.redis.zcard(keys.BROADCASTS) == 0


async def test_a_staff_step_and_a_profile_step_replace_and_cancel_each_other(staff_bot: Bot) -> None:
    bot = staff_bot
    redis = bot.services.redis
    card = await say(bot, STAFF, "プロフィール")
    [ask] = [a for a in postbacks(card) if a["label"] == ja(bot, "profile_set_nickname")]
    await tap(bot, STAFF, ask["data"])
    assert await conversation.pending(redis, STAFF) == "nickname"
    await say(bot, STAFF, "配信する")  # the staff step replaces the nickname step
    assert await conversation.pending(redis, STAFF) == "broadcast_text"
    assert body(await say(bot, STAFF, "キャンセル")) == ja(bot, "staff_cancelled")
    assert await conversation.pending(redis, STAFF) is None
    assert (await bot.services.program.member(STAFF)).nickname is None

    await say(bot, STAFF, "配信する")
    await tap(bot, STAFF, ask["data"])  # the nickname step replaces the staff step
    assert await conversation.pending(redis, STAFF) == "nickname"
    assert body(await say(bot, STAFF, "stop")) == ja(bot, "nickname_cancelled")
    assert await conversation.pending(redis, STAFF) is None
    assert await redis.zcard(keys.BROADCASTS) == 0


async def test_a_confirm_that_failed_once_makes_exactly_one_job_on_its_retry(
        staff_bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    """The job is stored, then the handler dies before answering: the worker's retry finds that job."""
    bot = staff_bot
    real_create = Broadcasts.create
    calls: list[str] = []

    async def create_then_fail_once(self: Broadcasts, *args: object, **kwargs: object) -> dict:
        job = await real_create(self, *args, **kwargs)  # type: ignore[arg-type]
        calls.append(job["id"])
        if len(calls) == 1:
            raise RuntimeError("crash after the job was stored")
        return job

    monkeypatch.setattr(Broadcasts, "create", create_then_fail_once)
    await say(bot, STAFF, "broadcast")
    [segment] = [p for p in postbacks(await say(bot, STAFF, "Sale!")) if p["label"].startswith(("全員", "Everyone"))]
    [send] = postbacks(await tap(bot, STAFF, segment["data"]))
    done = await tap(bot, STAFF, send["data"])  # answered by the retry
    assert "配信を受け付けました" in body(done)
    assert len(calls) == 2 and calls[0] == calls[1]
    assert await bot.services.redis.zcard(keys.BROADCASTS) == 1
    assert len([e for e in await audit(bot) if e["what"] == "broadcast"]) == 1


@pytest.mark.parametrize(("code", "key"), [("UNKNOWN_MEMBER", "staff_adjust_refused_UNKNOWN_MEMBER"),
                                           ("SOMETHING_NEW", "staff_adjust_refused")])
async def test_a_refused_adjustment_is_answered_by_its_code(staff_bot: Bot, monkeypatch: pytest.MonkeyPatch,
                                                            code: str, key: str) -> None:
    bot = staff_bot
    customer = new_user_id()
    await follow(bot, customer)
    member_code = await bot.services.program.invite_code(customer)
    before = await points_of(bot, customer)

    async def refuse(*args: object, **kwargs: object) -> tuple[bool, int]:
        raise ProgramError(code, "refused")

    monkeypatch.setattr(bot.services.program, "adjust", refuse)
    answer = body(await say(bot, STAFF, f"調整 {member_code} +100 来店"))
    assert answer == ja(bot, key, code=code)
    assert ja(bot, "staff_member_not_found", query=member_code) not in answer
    assert await points_of(bot, customer) == before
    assert not [e for e in await audit(bot) if e["what"] == "adjust_points"]


async def test_cancel_ends_a_flow_and_the_next_text_is_ordinary(staff_bot: Bot) -> None:
    bot = staff_bot
    await say(bot, STAFF, "配信する")
    assert body(await say(bot, STAFF, "キャンセル")) == ja(bot, "staff_cancelled")
    assert body(await say(bot, STAFF, "こんにちは")) == ja(bot, "fallback")
    assert await bot.services.redis.llen(keys.BROADCAST_QUEUE) == 0


async def test_staff_look_up_and_adjust_points_with_a_reason(staff_bot: Bot) -> None:
    bot = staff_bot
    customer = new_user_id()
    await follow(bot, customer)
    code = await bot.services.program.invite_code(customer)
    before = await points_of(bot, customer)
    assert body(await say(bot, STAFF, "会員を探す")) == ja(bot, "staff_member_ask")
    card = body(await say(bot, STAFF, code.lower()))
    assert f"{code[:4]}-{code[4:]}" in card and f"ポイント {before:,}" in card
    assert customer in body(await say(bot, STAFF, f"member {code}"))
    assert "見つかりませんでした" in body(await say(bot, STAFF, "会員 ZZZZ9999"))

    done = body(await say(bot, STAFF, f"調整 {code} +100 来店サービス"))
    assert "Sorry" in body(await say(bot, STAFF, f"adjust {code.lower()} -10 Sorry, typo"))
    assert "+100" in done and "来店サービス" in done
    assert await points_of(bot, customer) == before + 90
    assert ja(bot, "staff_adjust_bad_points", max="1,000,000") == body(await say(bot, STAFF, f"調整 {code} 0 x"))
    assert await points_of(bot, customer) == before + 90
    entry, second = [e for e in await audit(bot) if e["what"] == "adjust_points"]
    assert second["reason"] == "Sorry, typo" and int(second["points"]) == -10
    assert entry["who"] == STAFF and entry["member"] == customer and entry["reason"] == "来店サービス"
    assert (int(entry["before"]), int(entry["after"])) == (before, before + 100)


async def test_staff_mark_a_scanned_coupon_used_once(staff_bot: Bot) -> None:
    bot = staff_bot
    customer = new_user_id()
    await follow(bot, customer)
    catalog, program = bot.services.catalog, bot.services.program
    await program.adjust(customer, 1000, "test", "test", "adjust:test")
    offer = await catalog.show(customer, "coffee")
    assert offer is not None
    result = await catalog.confirm(customer, offer.claim_id)
    assert result.ok and result.coupon is not None
    token = result.coupon.token
    assert body(await say(bot, STAFF, "クーポン使用")) == ja(bot, "staff_coupon_ask")
    used = body(await say(bot, STAFF, f"{PUBLIC}/c/{token}"))
    assert "使用済みにしました" in used and result.coupon.code in used
    assert body(await say(bot, STAFF, f"クーポン使用 {token}")) == ja(bot, "staff_coupon_ALREADY_USED")
    assert body(await say(bot, STAFF, "クーポン使用 nosuchtoken")) == ja(bot, "staff_coupon_UNKNOWN_COUPON")
    [entry] = [e for e in await audit(bot) if e["what"] == "use_coupon"]
    assert entry["who"] == STAFF and entry["member"] == customer and entry["token"] == token
    found = await catalog.coupon(token)
    assert found is not None and found[1].used


async def test_staff_see_todays_numbers(staff_bot: Bot) -> None:
    bot = staff_bot
    customer = new_user_id()
    await follow(bot, customer)
    await say(bot, customer, "招待")
    card = body(await say(bot, STAFF, "今日の数字"))
    assert card.startswith("📊 今日の数字") and "招待表示 1" in card
    assert re.search(r"K係数 \d+\.\d\d$", card), card
    assert body(await say(bot, STAFF, "today")).startswith("📊 今日の数字")


async def test_staff_approve_a_reviewed_referral_in_chat_once(staff_bot: Bot) -> None:
    bot = staff_bot
    a, b = await review_referral(bot)
    a_before, b_before = await points_of(bot, a), await points_of(bot, b)
    listed = await say(bot, STAFF, "審査待ち")
    assert b in body(listed)
    approve, void = postbacks(listed)
    assert approve["label"] == "1 承認" and void["label"] == "1 無効"
    mark = len(bot.platform.calls)
    assert body(await tap(bot, STAFF, approve["data"])) == ja(bot, "staff_review_approved", friend=b)
    await tap(bot, STAFF, approve["data"])
    await bot.idle()
    rules = bot.services.program.rules
    assert await points_of(bot, a) == a_before + rules.referrer_points
    assert await points_of(bot, b) == b_before + rules.friend_points
    told = [c for c in bot.platform.calls[mark:] if c.endpoint == "push" and c.body["to"] == a]
    assert len(told) == 1 and told[0].body["messages"][0]["text"].startswith("お友だちが初めて")  # told once
    [entry] = [e for e in await audit(bot) if e["what"] == "approve_referral"]
    assert entry["who"] == STAFF and entry["member"] == b and (entry["before"], entry["after"]) == ("review",
                                                                                                   "completed")
    assert body(await say(bot, STAFF, "審査待ち")) == ja(bot, "staff_review_none")


@pytest.mark.parametrize("word", ["今日の数字", "review"])
async def test_staff_added_through_the_api_get_the_commands_until_removed(staff_bot: Bot, word: str) -> None:
    bot = staff_bot
    helper = new_user_id()
    await follow(bot, helper)
    assert body(await say(bot, helper, word)) == ja(bot, "fallback")
    assert (await bot.admin("POST", f"/api/v1/staff/{helper}"))[0] == 200
    assert body(await say(bot, helper, word)) != ja(bot, "fallback")
    assert (await bot.admin("DELETE", f"/api/v1/staff/{helper}"))[0] == 200
    await asyncio.sleep(0)
    assert body(await say(bot, helper, word)) == ja(bot, "fallback")


async def test_staff_broadcast_offers_segments_and_refuses_an_unknown_placeholder(staff_bot: Bot) -> None:
    bot = staff_bot
    staff_id = next(iter(bot.services.settings.staff_user_ids))
    await say(bot, staff_id, "配信する")
    refused = await say(bot, staff_id, "こんにちは {nickname} さん")
    assert "送れません" in body(refused) and "nickname" in body(refused)
    picked = await say(bot, staff_id, "春のキャンペーンです")
    labels = [i["action"]["label"] for i in picked[-1]["quickReply"]["items"]]
    assert any(label.startswith("全員") for label in labels) and any(label.startswith("未紹介") for label in labels)
    assert all(len(label) <= 20 for label in labels)
    await bot.idle()
    assert not bot.platform.violations
