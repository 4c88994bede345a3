"""POST /callback hygiene: what the webhook refuses, what it accepts but ignores, and what it never does twice.

Every refused request gets a clear status and leaves no trace (no intake "seen" key, nothing in the
streams, no member); every accepted-but-ignored event answers 200 and makes the bot say nothing.
"""
import json
import secrets

import pytest

from bot.infra import keys
from linesim.platform import Platform, new_user_id, sign
from rewards import buckets
from rewards import keys as rkeys
from tests.support.harness import SECRET, Bot, converse

MIB = 1024 * 1024
MESSAGE_ENDPOINTS = ("reply", "push", "multicast", "broadcast")


# ---- helpers -------------------------------------------------------------------------------
async def queued(bot: Bot) -> int:
    """Events waiting in the intake streams right now."""
    redis = bot.services.redis
    return sum([await redis.xlen(keys.stream(p)) for p in range(bot.services.settings.stream_partitions)])


async def seen_keys(bot: Bot) -> list[bytes]:
    """Intake dedupe markers: one per event ever queued (they outlive the stream entries)."""
    return [k async for k in bot.services.redis.scan_iter(match=f"{rkeys.PREFIX}:events:*:seen:*")]


async def assert_nothing_stored(bot: Bot, *uids: str) -> None:
    assert await queued(bot) == 0
    assert await seen_keys(bot) == []
    for uid in uids:
        assert not await bot.services.redis.exists(rkeys.member(uid)), f"member {uid} was created"


async def dead_letters(bot: Bot) -> int:
    redis = bot.services.redis
    return sum([await redis.xlen(keys.stream(p) + ":dead") for p in range(bot.services.settings.stream_partitions)])


def messages_sent(platform: Platform, since: int = 0) -> list:
    """Every message-sending call the bot made, to anyone."""
    return [c for c in platform.calls[since:] if c.endpoint in MESSAGE_ENDPOINTS]


async def metric(bot: Bot, sample: str) -> float | None:
    async with bot.http.get(bot.url + "/metrics") as r:
        assert r.status == 200
        text = await r.text()
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return None


async def post(bot: Bot, body: bytes, headers: dict) -> int:
    async with bot.http.post(bot.platform.bot_url, data=body, headers=headers) as r:
        await r.read()
        return r.status


# ---- refused before anything is stored ------------------------------------------------------
async def test_missing_signature_is_400(bot: Bot) -> None:
    uid = new_user_id()
    body = bot.platform.payload(bot.platform.follow(uid))
    assert await post(bot, body, {"Content-Type": "application/json"}) == 400
    await assert_nothing_stored(bot, uid)


@pytest.mark.parametrize("signature", [
    "not-base64-at-all",
    sign(b"some other body", SECRET),
    sign(b"", SECRET),
    "",
], ids=["garbage", "other-body", "empty-body", "empty-header"])
async def test_wrong_signature_is_400(bot: Bot, signature: str) -> None:
    uid = new_user_id()
    body = bot.platform.payload(bot.platform.follow(uid))
    assert await bot.platform.send_raw(body, signature=signature) == 400
    await assert_nothing_stored(bot, uid)


async def test_signature_made_with_another_secret_is_400(bot: Bot) -> None:
    uid = new_user_id()
    body = bot.platform.payload(bot.platform.follow(uid))
    assert await bot.platform.send_raw(body, signature=sign(body, "another-channel-secret")) == 400
    await assert_nothing_stored(bot, uid)


async def test_lower_case_signature_header_is_accepted(bot: Bot) -> None:
    platform = bot.platform
    uid = new_user_id()
    body = platform.payload(platform.follow(uid))
    status = await post(bot, body, {"Content-Type": "application/json", "x-line-signature": sign(body, SECRET)})
    assert status == 200
    await bot.idle()
    assert await bot.services.redis.exists(rkeys.member(uid))


@pytest.mark.parametrize("body", [
    b"this is not json",
    b"{\"events\": [",
    b"",
    b"[]",
    b"[{\"events\": []}]",
    b"\"events\"",
    b"null",
    b"42",
    b"{}",
    b"{\"destination\": \"U0\"}",
    b"{\"events\": {}}",
    b"{\"events\": \"none\"}",
    b"{\"events\": null}",
], ids=["text", "truncated", "empty", "array", "array-of-object", "string", "null", "number", "no-events",
        "destination-only", "events-object", "events-string", "events-null"])
async def test_signed_body_that_is_not_a_webhook_object_is_400(bot: Bot, body: bytes) -> None:
    assert await bot.platform.send_raw(body) == 400
    await assert_nothing_stored(bot)


@pytest.mark.parametrize("body", [b"\xff\xfe{\"events\": []}", "{\"events\": []}".encode("utf-16"),
                                  b"{\"events\": [], \"x\": \"\xc3\x28\"}"],
                         ids=["bad-lead-bytes", "utf-16", "bad-continuation"])
async def test_signed_body_that_is_not_utf8_is_400(bot: Bot, body: bytes) -> None:
    assert await bot.platform.send_raw(body) == 400
    await assert_nothing_stored(bot)


def padded_webhook(platform: Platform, uid: str, size: int) -> bytes:
    """A real, correctly signable webhook (a follow) padded with an extra field to `size` bytes."""
    event = platform.follow(uid)
    bare = platform.payload(event)
    padding = "x" * (size - len(bare) - len(', "padding": ""'))
    body = json.dumps({"destination": "U" + "0" * 32, "events": [event], "padding": padding}).encode()
    return body + b" " * (size - len(body))


@pytest.mark.parametrize("size", [2 * MIB, MIB * 3 // 2, MIB + 1], ids=["2MiB", "1.5MiB", "1MiB+1"])
async def test_body_over_one_mib_is_413(bot: Bot, size: int) -> None:
    uid = new_user_id()
    body = padded_webhook(bot.platform, uid, size)
    assert len(body) == size
    assert await bot.platform.send_raw(body) == 413
    await assert_nothing_stored(bot, uid)


async def test_chunked_body_over_one_mib_is_413(bot: Bot) -> None:
    """No Content-Length to go by: the limit still holds while reading."""
    uid = new_user_id()
    body = padded_webhook(bot.platform, uid, 2 * MIB)

    async def chunks():
        for start in range(0, len(body), 64 * 1024):
            yield body[start:start + 64 * 1024]

    headers = {"Content-Type": "application/json", "X-Line-Signature": sign(body, SECRET)}
    async with bot.http.post(bot.platform.bot_url, data=chunks(), headers=headers) as r:
        assert r.status == 413
    await assert_nothing_stored(bot, uid)


async def test_body_just_under_one_mib_is_accepted(bot: Bot) -> None:
    uid = new_user_id()
    body = padded_webhook(bot.platform, uid, MIB - 16)
    assert await bot.platform.send_raw(body) == 200
    await bot.idle()
    assert await bot.services.redis.exists(rkeys.member(uid))


# ---- accepted, but nothing to do -----------------------------------------------------------
async def test_empty_events_list_is_200_and_stores_nothing(bot: Bot) -> None:
    """LINE's "Verify" button sends exactly this."""
    body = json.dumps({"destination": "U" + "0" * 32, "events": []}).encode()
    assert await bot.platform.send_raw(body) == 200
    await assert_nothing_stored(bot)


async def test_unknown_event_type_is_200_counted_and_not_queued(bot: Bot) -> None:
    platform = bot.platform
    uid = new_user_id()
    event = platform.event("somethingNew", uid, somethingNew={"detail": 1})
    before = await metric(bot, 'shokai_webhook_events_total{outcome="unhandled_type"}') or 0.0
    assert await platform.send(event) == 200
    await assert_nothing_stored(bot, uid)
    after = await metric(bot, 'shokai_webhook_events_total{outcome="unhandled_type"}')
    assert after == before + 1
    assert messages_sent(platform) == []


BAD_USER_IDS = ["", "}", "{", "U" + "a" * 20_000, "U" + "A" * 32, "U" + "0" * 31, "U" + "0" * 32 + "\n",
                "C" + "0" * 32, "U" + "０" * 32]


async def test_user_ids_not_shaped_like_lines_are_counted_logged_and_not_queued(bot: Bot, caplog) -> None:
    """A user id is used in every key of the member (its hash tag {U…}): "" or "}" would split one member's
    keys over cluster slots, 20,000 characters would sit in every key. Only LINE's shape is queued; the rest
    of the body is handled as usual and LINE gets its 200."""
    platform = bot.platform
    good = new_user_id()
    before = await metric(bot, 'shokai_webhook_events_total{outcome="bad_user_id"}') or 0.0
    bad_events = [platform.follow(uid) for uid in BAD_USER_IDS] + [platform.text(BAD_USER_IDS[1], "招待")]
    with caplog.at_level("WARNING", logger="bot.intake.stream"):
        assert await platform.send(*bad_events, platform.follow(good)) == 200
    await bot.idle()
    assert len(await seen_keys(bot)) == 1, "only the good event was queued"
    assert await metric(bot, 'shokai_webhook_events_total{outcome="bad_user_id"}') == before + len(bad_events)
    warnings = [r.getMessage() for r in caplog.records if "bad_user_id" in r.getMessage()]
    assert len(warnings) == len(bad_events) and all(len(w) < 400 for w in warnings)
    redis = bot.services.redis
    assert await buckets.member_ids(redis) == [good]
    for uid in BAD_USER_IDS:
        assert not await redis.exists(rkeys.member(uid))
    assert [c.to for c in messages_sent(platform)] == [[good]], "only the good follow was welcomed"


def group_source(uid: str) -> dict:
    return {"type": "group", "groupId": "C" + secrets.token_hex(16), "userId": uid}


def room_source(uid: str) -> dict:
    return {"type": "room", "roomId": "R" + secrets.token_hex(16), "userId": uid}


@pytest.mark.parametrize("source", [group_source, room_source], ids=["group", "room"])
@pytest.mark.parametrize("words", ["招待", "ヘルプ", "ABCD-2345"])
async def test_group_and_room_messages_are_ignored(bot: Bot, source, words: str) -> None:
    platform = bot.platform
    uid = new_user_id()
    event = platform.text(uid, words, source=source(uid))
    assert await platform.send(event) == 200
    await assert_nothing_stored(bot, uid)
    await bot.idle()
    assert messages_sent(platform) == []


async def test_join_event_in_a_group_is_ignored(bot: Bot) -> None:
    platform = bot.platform
    uid = new_user_id()
    event = platform.event("join", uid, source={"type": "group", "groupId": "C" + secrets.token_hex(16)})
    assert await platform.send(event) == 200
    await assert_nothing_stored(bot, uid)
    assert messages_sent(platform) == []


@pytest.mark.parametrize("make", [Platform.sticker, Platform.image], ids=["sticker", "image"])
async def test_sticker_or_image_gets_a_kind_answer_with_quick_replies(bot: Bot, make) -> None:
    platform = bot.platform
    uid = new_user_id()
    await converse(platform, uid, platform.follow(uid))
    answer = await converse(platform, uid, make(platform, uid))
    assert len(answer) == 1, answer
    assert answer[0]["type"] == "text"
    assert answer[0]["text"] == bot.services.texts.get("ja", "not_text")
    assert len(answer[0]["quickReply"]["items"]) >= 4


def text_without_quote_token(platform: Platform, uid: str) -> dict:
    event = platform.text(uid, "ヘルプ")
    del event["message"]["quoteToken"]
    return event


def event_without_mode(platform: Platform, uid: str) -> dict:
    event = platform.text(uid, "ヘルプ")
    del event["mode"]
    return event


def event_with_text_timestamp(platform: Platform, uid: str) -> dict:
    return platform.text(uid, "ヘルプ", timestamp="soon")


def follow_without_follow_detail(platform: Platform, uid: str) -> dict:
    event = platform.follow(uid)
    del event["follow"]
    return event


@pytest.mark.parametrize("make", [text_without_quote_token, event_without_mode, event_with_text_timestamp,
                                  follow_without_follow_detail],
                         ids=["no-quoteToken", "no-mode", "text-timestamp", "follow-without-detail"])
async def test_event_that_breaks_lines_schema_is_acked_and_answered_with_silence(bot: Bot, make) -> None:
    platform = bot.platform
    uid = new_user_id()
    assert await platform.send(make(platform, uid)) == 200
    await bot.idle()  # the worker logs it as unparseable and acknowledges it: the stream drains
    assert messages_sent(platform) == []
    assert await dead_letters(bot) == 0
    # and the worker is still alive for the next event
    assert await converse(platform, uid, platform.text(uid, "ヘルプ"))


async def test_a_bad_timestamp_next_to_a_good_event_does_not_stop_the_worker(bot: Bot) -> None:
    platform = bot.platform
    uid = new_user_id()
    good = platform.text(uid, "ヘルプ")
    bad = platform.text(uid, "ヘルプ", timestamp="soon")
    mark = len(platform.calls)
    assert await platform.send(bad, good) == 200
    await bot.idle(timeout=5)
    assert len(platform.said_to(uid, mark)) == 1
    assert await converse(platform, uid, platform.text(uid, "ヘルプ"))


async def test_same_event_twice_in_one_body_is_queued_once(bot: Bot) -> None:
    platform = bot.platform
    uid = new_user_id()
    await converse(platform, uid, platform.follow(uid))
    event = platform.text(uid, "ヘルプ")
    mark = len(platform.calls)
    assert await platform.send(event, event) == 200
    assert len(await seen_keys(bot)) == 2  # the follow and this one
    await platform.wait_for(lambda: platform.said_to(uid, mark))
    await bot.idle()
    assert len(platform.said_to(uid, mark)) == 1
    assert len(messages_sent(platform, mark)) == 1


async def assert_standby_follow_recorded_silently(bot: Bot, event: dict, uid: str) -> None:
    platform = bot.platform
    assert await platform.send(event) == 200
    await bot.idle()
    status, member = await bot.admin("GET", f"/api/v1/members/{uid}")
    assert status == 200, member
    assert member["user_id"] == uid
    assert messages_sent(platform) == []


async def test_standby_follow_records_the_member_but_says_nothing(bot: Bot) -> None:
    uid = new_user_id()
    event = bot.platform.follow(uid, mode="standby")
    assert "replyToken" not in event  # as LINE sends it in standby
    await assert_standby_follow_recorded_silently(bot, event, uid)


async def test_standby_follow_with_a_reply_token_records_the_member_but_says_nothing(bot: Bot) -> None:
    """The same, shaped the way the SDK's FollowEvent model insists on (replyToken present)."""
    uid = new_user_id()
    event = bot.platform.follow(uid, mode="standby", replyToken=secrets.token_hex(16))
    await assert_standby_follow_recorded_silently(bot, event, uid)


async def test_standby_text_says_nothing(bot: Bot) -> None:
    platform = bot.platform
    uid = new_user_id()
    assert await platform.send(platform.follow(uid, mode="standby")) == 200
    for words in ("招待", "ヘルプ", "what?"):
        assert await platform.send(platform.text(uid, words, mode="standby")) == 200
    await bot.idle()
    assert messages_sent(platform) == []


async def test_healthz_is_200_with_redis_up(bot: Bot) -> None:
    async with bot.http.get(bot.url + "/healthz") as r:
        assert r.status == 200
        assert (await r.json())["redis"] == "ok"
