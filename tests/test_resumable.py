"""A handler that fails half-way (here: Redis refuses one command) is tried again by the worker, and the
retry finishes what the first try began: a first write must not make the retry decide it has nothing left
to do. Each test injects the failure at the step after such a first write and checks the end state."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
from redis.exceptions import ConnectionError as RedisConnectionError

from bot.intake import worker
from handlers.profile import ChooseLanguage, ConfirmBirthday
from handlers.staff_review import ApproveReferral, VoidReferral
from linesim.platform import new_user_id, text_of
from rewards import engine
from rewards import keys as rkeys
from tests.support.harness import Bot, BotWith, converse, pack
from tests.test_admin_api import follow
from tests.test_admin_api_more import review_referral


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed entry is claimed again after 50 ms instead of 2 s (the worker reads it at each pass)."""
    monkeypatch.setattr(worker, "RETRY_IDLE_MS", 50)


class FailsOnce:
    """Wraps one Redis client method: the first call that `matches` raises a connection error, as a Redis
    going away at that moment would; every other call goes through. With `after`, the command is carried
    out first and only its reply is lost (the connection dropped on the way back)."""

    def __init__(self, redis: Any, method: str, matches: Callable[..., bool], after: bool = False) -> None:
        self.redis, self.method, self.matches, self.after = redis, method, matches, after
        self.original = getattr(redis, method)
        self.failed = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.failed and self.matches(*args, **kwargs):
            self.failed += 1
            if self.after:
                await self.original(*args, **kwargs)
            raise RedisConnectionError("injected: Redis went away here")
        return await self.original(*args, **kwargs)


class Faults:
    """Installs FailsOnce wrappers on a bot's Redis client and takes them away after the test."""

    def __init__(self) -> None:
        self.installed: list[FailsOnce] = []

    def install(self, bot: Bot, method: str, matches: Callable[..., bool], after: bool = False) -> FailsOnce:
        redis = bot.services.redis
        wrapper = FailsOnce(redis, method, matches, after)
        setattr(redis, method, wrapper)  # the instance attribute shadows the client's method
        self.installed.append(wrapper)
        return wrapper

    def remove(self) -> None:
        for wrapper in reversed(self.installed):
            delattr(wrapper.redis, wrapper.method)


@pytest.fixture
def faults() -> Iterator[Faults]:
    injected = Faults()
    yield injected
    injected.remove()


@pytest.fixture
def fail_once(bot: Bot, faults: Faults) -> Callable[..., FailsOnce]:
    return lambda method, matches: faults.install(bot, method, matches)


async def test_a_follow_that_failed_before_saving_the_language_saves_it_on_the_retry(
        bot: Bot, fail_once: Callable[..., FailsOnce]) -> None:
    """The member was recorded, then Redis failed before their LINE language was saved: the retry used to
    take them for a known member and never save it (nor answer in it)."""
    platform, uid = bot.platform, new_user_id()
    injected = fail_once("hset", lambda name, key=None, *a, **kw: name == rkeys.member(uid) and key == rkeys.field("lang"))
    welcome = await converse(platform, uid, platform.follow(uid, language="en"))
    await bot.idle()
    assert injected.failed == 1, "the failure was injected"
    member = await bot.services.program.member(uid)
    assert member is not None and member.lang == "en"
    assert len(welcome) == 1 and "Thanks for adding us" in text_of(welcome) and "100" in text_of(welcome)
    assert member.points == 100, "signup points once"
    assert uid in await bot.services.program.member_ids()
    assert not platform.violations


async def test_a_first_sighting_that_failed_before_listing_the_member_lists_them_on_the_retry(
        bot: Bot, fail_once: Callable[..., FailsOnce]) -> None:
    """The member record was written, then adding them to the member list failed: the retry found the record
    and never listed them (no broadcast, no count, no review scan would ever see them)."""
    platform, uid = bot.platform, new_user_id()
    injected = fail_once("hset", lambda name, *values: name == rkeys.members(uid) and uid in values)
    said = await converse(platform, uid, platform.text(uid, "ヘルプ"))
    await bot.idle()
    assert injected.failed == 1 and said
    assert uid in await bot.services.program.member_ids()
    assert uid in await bot.services.program.active_members()


async def test_a_birthday_that_failed_after_it_was_saved_is_finished_by_the_retry(
        bot: Bot, fail_once: Callable[..., FailsOnce]) -> None:
    """The birthday was saved (set once, HSETNX), then Redis failed: the retry found it set and said "saved",
    but the member was never put on the month's birthday list nor paid for completing their profile."""
    platform, program, uid = bot.platform, bot.services.program, new_user_id()
    await converse(platform, uid, platform.follow(uid))
    await converse(platform, uid, platform.postback(uid, pack(ChooseLanguage("en"))))  # half the profile
    start = (await program.member(uid)).points  # type: ignore[union-attr]
    now_month = engine.shop_time(program.rules, int(program.clock() * 1000)).month
    month = now_month % 12 + 1  # not this month: no birthday points, only the profile's
    day = f"1990-{month:02d}-12"
    injected = fail_once("sadd", lambda name, *values: name == rkeys.birthdays(month))
    saved = await converse(platform, uid, platform.postback(uid, pack(ConfirmBirthday(day))))
    await bot.idle()
    assert injected.failed == 1
    member = await program.member(uid)
    assert member is not None and member.birthday == f"{month:02d}-12"
    assert uid.encode() in await bot.services.redis.smembers(rkeys.birthdays(month))
    assert await program.profile_points_paid(uid) == 50 and member.points == start + 50
    assert len(saved) == 1 and f"{month:02d}/12" in text_of(saved) and "50" in text_of(saved), text_of(saved)
    assert not platform.violations


# ---- staff actions: the audit entry beside a points write, once per operation ----------------------------
STAFF = "U" + "6" * 32
WHERE = ["before", "after"]  # the audit write fails before reaching Redis, or its reply is lost after it


@pytest_asyncio.fixture
async def staff_bot(bot_with: BotWith) -> Bot:
    return await bot_with(staff_user_ids=frozenset({STAFF}))


def fail_the_audit_write(bot: Bot, faults: Faults, where: str) -> list[FailsOnce]:
    """The first write to the audit stream fails, however it is written (a plain XADD or a script)."""
    return [faults.install(bot, "xadd", lambda name, *a, **kw: name == rkeys.AUDIT, after=where == "after"),
            faults.install(bot, "evalsha", lambda sha, numkeys, *rest: rkeys.AUDIT in rest[:int(numkeys)],
                           after=where == "after")]


async def audited(bot: Bot, what: str) -> list[dict[str, str]]:
    entries = await bot.services.redis.xrange(rkeys.AUDIT)
    rows = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]
    return [row for row in rows if row["what"] == what]


def said(bot: Bot, key: str, **values: object) -> str:
    return bot.services.texts.get("ja", key, **values)


async def staff_says(bot: Bot, text: str) -> str:
    return "\n".join(m.get("text", "") for m in await converse(bot.platform, STAFF, bot.platform.text(STAFF, text)))


async def staff_taps(bot: Bot, data: str) -> str:
    return "\n".join(m.get("text", "") for m in await converse(bot.platform, STAFF, bot.platform.postback(STAFF, data)))


@pytest.mark.parametrize("where", WHERE)
async def test_an_adjustment_whose_audit_write_failed_is_audited_once_on_the_retry(
        staff_bot: Bot, faults: Faults, where: str) -> None:
    """The points were adjusted (op adjust:chat:{event}), then the audit write failed: the retry found the op
    done and skipped the audit, so the adjustment was never audited."""
    bot, customer = staff_bot, new_user_id()
    await follow(bot, customer)
    injected = fail_the_audit_write(bot, faults, where)
    answer = await staff_says(bot, f"調整 {customer} +250 お詫び")
    await bot.idle()
    assert sum(i.failed for i in injected) == 1, "the failure was injected"
    assert (await bot.services.program.member(customer)).points == 350  # type: ignore[union-attr]
    [entry] = await audited(bot, "adjust_points")
    assert (entry["who"], entry["member"], entry["before"], entry["after"], entry["points"], entry["reason"]) == (
        STAFF, customer, "100", "350", "250", "お詫び")
    assert "350" in answer and "+250" in answer, answer
    assert not bot.platform.violations


@pytest.mark.parametrize("approve", [True, False], ids=["approve", "void"])
@pytest.mark.parametrize("where", WHERE)
async def test_a_review_decision_whose_audit_write_failed_is_audited_once_on_the_retry(
        staff_bot: Bot, faults: Faults, where: str, approve: bool) -> None:
    """The decision was taken (and the friend paid), then the audit write failed: the retry found the decision
    already taken ("changed" false) and skipped the audit."""
    bot = staff_bot
    referrer, friend = await review_referral(bot)
    friend_before = (await bot.services.program.member(friend)).points  # type: ignore[union-attr]
    injected = fail_the_audit_write(bot, faults, where)
    answer = await staff_taps(bot, pack(ApproveReferral(friend) if approve else VoidReferral(friend)))
    await bot.idle()
    assert sum(i.failed for i in injected) == 1, "the failure was injected"
    what, status = ("approve_referral", "completed") if approve else ("void_referral", "voided")
    [entry] = await audited(bot, what)
    assert (entry["who"], entry["member"], entry["referrer"], entry["before"], entry["after"]) == (
        STAFF, friend, referrer, "review", status)
    assert answer == said(bot, "staff_review_approved" if approve else "staff_review_voided", friend=friend)
    paid = bot.services.program.rules.friend_points if approve else 0
    assert (await bot.services.program.member(friend)).points == friend_before + paid  # type: ignore[union-attr]
    assert not bot.platform.violations


async def a_claimed_coffee(bot: Bot, customer: str) -> Any:
    """A new member with points enough and a coffee claimed: the claim's result, with its coupon."""
    catalog = bot.services.catalog
    await follow(bot, customer)
    await bot.services.program.adjust(customer, 1000, "test", "test", "adjust:test")
    offer = await catalog.show(customer, "coffee")
    assert offer is not None
    claimed = await catalog.confirm(customer, offer.claim_id)
    assert claimed.ok and claimed.coupon is not None
    return claimed


@pytest.mark.parametrize("where", WHERE)
async def test_a_coupon_use_whose_audit_write_failed_is_audited_once_on_the_retry(
        staff_bot: Bot, faults: Faults, where: str) -> None:
    """The coupon was marked used, then the audit write failed: the retry found it used, answered "already
    used" to the staff who had just used it, and never audited the use."""
    bot, customer = staff_bot, new_user_id()
    claimed = await a_claimed_coffee(bot, customer)
    token = claimed.coupon.token
    injected = fail_the_audit_write(bot, faults, where)
    answer = await staff_says(bot, f"クーポン使用 {token}")
    await bot.idle()
    assert sum(i.failed for i in injected) == 1, "the failure was injected"
    [entry] = await audited(bot, "use_coupon")
    assert (entry["who"], entry["member"], entry["token"], entry["after"]) == (STAFF, customer, token, "used")
    assert "使用済みにしました" in answer and claimed.coupon.code in answer, answer
    assert await staff_says(bot, f"クーポン使用 {token}") == said(bot, "staff_coupon_ALREADY_USED")
    assert len(await audited(bot, "use_coupon")) == 1
    assert not bot.platform.violations


# ---- the admin API: a client retries a request answered 503 half-way -------------------------------------
@pytest.mark.parametrize("where", WHERE)
async def test_an_api_adjustment_retried_after_its_audit_write_failed_is_audited_once(
        bot: Bot, faults: Faults, where: str) -> None:
    customer = new_user_id()
    await follow(bot, customer)
    url, headers = f"/api/v1/members/{customer}/adjustments", {"Idempotency-Key": "ticket-88"}
    injected = fail_the_audit_write(bot, faults, where)
    status, _ = await bot.admin("POST", url, {"points": -30, "reason": "typo"}, headers=headers)
    assert status == 503 and sum(i.failed for i in injected) == 1
    status, again = await bot.admin("POST", url, {"points": -30, "reason": "typo"}, headers=headers)
    assert status == 200 and (again["applied"], again["points"]) == (False, 70), again
    [entry] = await audited(bot, "adjust_points")
    assert (entry["who"], entry["before"], entry["after"], entry["points"], entry["reason"]) == (
        "admin-api", "100", "70", "-30", "typo")


@pytest.mark.parametrize("where", WHERE)
async def test_an_api_review_decision_retried_after_its_audit_write_failed_is_audited_once(
        bot: Bot, faults: Faults, where: str) -> None:
    referrer, friend = await review_referral(bot)
    injected = fail_the_audit_write(bot, faults, where)
    url = f"/api/v1/referrals/{friend}/void"
    status, _ = await bot.admin("POST", url, {"reason": "same card"})
    assert status == 503 and sum(i.failed for i in injected) == 1
    status, again = await bot.admin("POST", url, {"reason": "same card"})
    assert status == 200 and (again["status"], again["changed"]) == ("voided", False), again
    [entry] = await audited(bot, "void_referral")
    assert (entry["who"], entry["member"], entry["referrer"], entry["before"], entry["after"], entry["reason"]) == (
        "api", friend, referrer, "review", "voided", "same card")


@pytest.mark.parametrize("where", WHERE)
async def test_an_api_coupon_use_retried_with_its_key_after_its_audit_write_failed_is_audited_once(
        bot: Bot, faults: Faults, where: str) -> None:
    customer = new_user_id()
    claimed = await a_claimed_coffee(bot, customer)
    url, headers = f"/api/v1/coupons/{claimed.coupon.token}/use", {"Idempotency-Key": "counter-2-0931"}
    injected = fail_the_audit_write(bot, faults, where)
    status, _ = await bot.admin("POST", url, headers=headers)
    assert status == 503 and sum(i.failed for i in injected) == 1
    status, again = await bot.admin("POST", url, headers=headers)
    assert status == 200 and again["used"] and again["user_id"] == customer, again
    status, other = await bot.admin("POST", url, headers={"Idempotency-Key": "counter-3-0932"})
    assert (status, other["error"]["code"]) == (409, "ALREADY_USED")
    assert (await bot.admin("POST", url))[0] == 409
    [entry] = await audited(bot, "use_coupon")
    assert (entry["who"], entry["member"], entry["token"]) == ("admin-api", customer, claimed.coupon.token)


@pytest.mark.parametrize("where", WHERE)
async def test_a_staff_broadcast_whose_audit_write_failed_is_audited_once_on_the_retry(
        staff_bot: Bot, faults: Faults, where: str) -> None:
    """The job was stored and queued, then the audit write failed: the retry found the job ("existing") and
    returned before auditing it."""
    bot = staff_bot
    await staff_says(bot, "配信する")
    picked = await converse(bot.platform, STAFF, bot.platform.text(STAFF, "閉店のお知らせ"))
    [everyone] = [i["action"] for i in picked[-1]["quickReply"]["items"]
                  if i["action"]["type"] == "postback" and i["action"]["label"].startswith("全員")]
    confirm = await converse(bot.platform, STAFF, bot.platform.postback(STAFF, everyone["data"]))
    [send] = [i["action"] for i in confirm[-1]["quickReply"]["items"] if i["action"]["type"] == "postback"]
    injected = fail_the_audit_write(bot, faults, where)
    done = await staff_taps(bot, send["data"])
    await bot.idle()
    assert sum(i.failed for i in injected) == 1, "the failure was injected"
    assert "配信を受け付けました" in done, done
    [entry] = await audited(bot, "broadcast")
    assert (entry["who"], entry["total"], entry["status"]) == (STAFF, "1", "queued")
    assert not bot.platform.violations
