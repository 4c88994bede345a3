"""A handler that fails half-way (here: Redis refuses one command) is tried again by the worker, and the
retry finishes what the first try began: a first write must not make the retry decide it has nothing left
to do. Each test injects the failure at the step after such a first write and checks the end state."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from bot.intake import worker
from handlers.profile import ChooseLanguage, ConfirmBirthday
from linesim.platform import new_user_id, text_of
from rewards import engine
from rewards import keys as rkeys
from tests.support.harness import Bot, converse, pack


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed entry is claimed again after 50 ms instead of 2 s (the worker reads it at each pass)."""
    monkeypatch.setattr(worker, "RETRY_IDLE_MS", 50)


class FailsOnce:
    """Wraps one Redis client method: the first call that `matches` raises a connection error, as a Redis
    going away at that moment would; every other call goes through."""

    def __init__(self, redis: Any, method: str, matches: Callable[..., bool]) -> None:
        self.redis, self.method, self.matches = redis, method, matches
        self.original = getattr(redis, method)
        self.failed = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.failed and self.matches(*args, **kwargs):
            self.failed += 1
            raise RedisConnectionError("injected: Redis went away here")
        return await self.original(*args, **kwargs)


@pytest.fixture
def fail_once(bot: Bot) -> Iterator[Callable[..., FailsOnce]]:
    redis = bot.services.redis
    installed: list[FailsOnce] = []

    def install(method: str, matches: Callable[..., bool]) -> FailsOnce:
        wrapper = FailsOnce(redis, method, matches)
        setattr(redis, method, wrapper)  # the instance attribute shadows the client's method
        installed.append(wrapper)
        return wrapper

    yield install
    for wrapper in installed:
        delattr(redis, wrapper.method)


async def test_a_follow_that_failed_before_saving_the_language_saves_it_on_the_retry(
        bot: Bot, fail_once: Callable[..., FailsOnce]) -> None:
    """The member was recorded, then Redis failed before their LINE language was saved: the retry used to
    take them for a known member and never save it (nor answer in it)."""
    platform, uid = bot.platform, new_user_id()
    injected = fail_once("hset", lambda name, key=None, *a, **kw: name == rkeys.member(uid) and key == "lang")
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
    """The member record was written, then adding them to the members set failed: the retry found the record
    and never listed them (no broadcast, no count, no review scan would ever see them)."""
    platform, uid = bot.platform, new_user_id()
    injected = fail_once("sadd", lambda name, *values: name == rkeys.MEMBERS and uid in values)
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
