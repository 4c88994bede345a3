"""The admin API (/api/v1/*): bearer auth, strict validation that stores nothing when it refuses,
purchases and refunds (including a refund that voids a completed referral), audited adjustments,
members, broadcasts by multicast, and stats.
"""
import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from bot.infra import keys
from linesim.platform import new_user_id, text_of
from rewards import keys as rkeys
from tests.support.harness import PUBLIC, Bot, BotWith, converse

INVITE = re.compile(re.escape(PUBLIC) + r"/i/([A-Z0-9]+)")
SOME_USER = "U" + "a" * 32

ADMIN_CALLS = [
    ("POST", "/api/v1/conversions", {"order_id": "o-1", "user_id": SOME_USER, "amount": 100}),
    ("POST", "/api/v1/conversions/o-1/refund", None),
    ("GET", f"/api/v1/members/{SOME_USER}", None),
    ("POST", f"/api/v1/members/{SOME_USER}/adjustments", {"points": 5, "reason": "test"}),
    ("POST", "/api/v1/broadcasts", {"text": "hi"}),
    ("GET", "/api/v1/broadcasts/" + "0" * 32, None),
    ("GET", "/api/v1/stats", None),
]
CALL_IDS = [f"{m} {p}" for m, p, _ in ADMIN_CALLS]


# ---- helpers -------------------------------------------------------------------------------
def assert_error(status: int, body: object, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


async def member(bot: Bot, uid: str) -> dict:
    status, body = await bot.admin("GET", f"/api/v1/members/{uid}")
    assert status == 200, body
    assert isinstance(body, dict)
    return body


async def points_of(bot: Bot, uid: str) -> int:
    return (await member(bot, uid))["points"]


async def follow(bot: Bot, uid: str) -> None:
    await converse(bot.platform, uid, bot.platform.follow(uid))


async def refer(bot: Bot, referrer: str, friend: str) -> None:
    """A follows and asks for an invite, B follows and sends the code: a pending referral."""
    platform = bot.platform
    await follow(bot, referrer)
    invite = await converse(platform, referrer, platform.text(referrer, "招待"))
    link = INVITE.search(text_of(invite))
    assert link, text_of(invite)
    await follow(bot, friend)
    await converse(platform, friend, platform.text(friend, link.group(1)))
    await bot.idle()  # the referrer's notification, too
    assert (await member(bot, referrer))["referrals"]["pending"] == 1


async def buy(bot: Bot, uid: str, order_id: str, amount: int) -> dict:
    status, body = await bot.admin("POST", "/api/v1/conversions",
                                   {"order_id": order_id, "user_id": uid, "amount": amount})
    assert status == 200, body
    assert isinstance(body, dict)
    return body


async def audit_entries(bot: Bot, what: str) -> list[dict]:
    entries = await bot.services.redis.xrange(rkeys.AUDIT)
    decoded = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]
    return [e for e in decoded if e["what"] == what]


async def broadcast_keys(bot: Bot) -> list[bytes]:
    return [k async for k in bot.services.redis.scan_iter(match=f"{rkeys.PREFIX}:broadcast:*")]


async def wait_for_broadcast(bot: Bot, job_id: str, seconds: float = 10.0) -> dict:
    for _ in range(int(seconds / 0.05)):
        status, job = await bot.admin("GET", f"/api/v1/broadcasts/{job_id}")
        assert status == 200, job
        assert isinstance(job, dict)
        if job["status"] not in ("queued", "running"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"broadcast {job_id} still {job['status']} after {seconds}s")


# ---- auth ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS, ids=CALL_IDS)
async def test_no_authorization_is_401(bot: Bot, method: str, path: str, body: object) -> None:
    status, answer = await bot.admin(method, path, body, token=None)
    assert_error(status, answer, 401, "UNAUTHENTICATED")


@pytest.mark.parametrize("header", ["Basic dGVzdDp0ZXN0", "Bearer", "Bearer ", "test-admin-token"])
async def test_malformed_authorization_is_401(bot: Bot, header: str) -> None:
    status, answer = await bot.admin("GET", "/api/v1/stats", token=None, headers={"Authorization": header})
    assert_error(status, answer, 401, "UNAUTHENTICATED")


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS, ids=CALL_IDS)
async def test_wrong_token_is_403(bot: Bot, method: str, path: str, body: object) -> None:
    status, answer = await bot.admin(method, path, body, token="not-the-admin-token")
    assert_error(status, answer, 403, "FORBIDDEN")
    assert not await bot.services.redis.exists(rkeys.member(SOME_USER))
    assert await bot.services.redis.llen(keys.BROADCAST_QUEUE) == 0


@pytest_asyncio.fixture
async def bot_without_admin_token(bot_with: BotWith) -> Bot:
    return await bot_with(admin_token=None)


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS, ids=CALL_IDS)
async def test_admin_api_is_disabled_without_admin_token(bot_without_admin_token: Bot, method: str, path: str,
                                                         body: object) -> None:
    bot = bot_without_admin_token
    for token in ("test-admin-token", "anything", "None"):
        status, answer = await bot.admin(method, path, body, token=token)
        assert_error(status, answer, 403, "ADMIN_API_DISABLED")
    status, answer = await bot.admin(method, path, body, token=None)
    assert_error(status, answer, 401, "UNAUTHENTICATED")
    assert not await bot.services.redis.exists(rkeys.member(SOME_USER))


# ---- conversions: validation ---------------------------------------------------------------
GOOD = {"order_id": "order-1", "user_id": SOME_USER, "amount": 3050}


def without(name: str) -> dict:
    return {k: v for k, v in GOOD.items() if k != name}


def with_(**changes: object) -> dict:
    return {**GOOD, **changes}


@pytest.mark.parametrize(("body", "code"), [
    (without("order_id"), "MISSING_FIELD"),
    (without("user_id"), "MISSING_FIELD"),
    (without("amount"), "MISSING_FIELD"),
    ({}, "MISSING_FIELD"),
    (with_(amount="100"), "INVALID_FIELD"),
    (with_(amount=True), "INVALID_FIELD"),
    (with_(amount=100.0), "INVALID_FIELD"),
    (with_(amount=[100]), "INVALID_FIELD"),
    (with_(amount=-1), "INVALID_AMOUNT"),
    (with_(amount=100_000_001), "INVALID_AMOUNT"),
    (with_(user_id=12345), "INVALID_FIELD"),
    (with_(user_id="U123"), "INVALID_USER_ID"),
    (with_(user_id="u" + "a" * 32), "INVALID_USER_ID"),
    (with_(user_id="U" + "A" * 32), "INVALID_USER_ID"),
    (with_(user_id="C" + "a" * 32), "INVALID_USER_ID"),
    (with_(order_id=42), "INVALID_FIELD"),
    (with_(order_id="order 1"), "INVALID_ORDER_ID"),
    (with_(order_id=""), "INVALID_ORDER_ID"),
    (with_(order_id="x" * 200), "INVALID_ORDER_ID"),
    (with_(order_id="注文1"), "INVALID_ORDER_ID"),
    (with_(occurred_at="yesterday"), "INVALID_OCCURRED_AT"),
    (with_(occurred_at="2024-13-01T00:00:00Z"), "INVALID_OCCURRED_AT"),
    (with_(occurred_at=""), "INVALID_OCCURRED_AT"),
    (with_(occurred_at=1700000000), "INVALID_FIELD"),
], ids=lambda v: v if isinstance(v, str) else None)
async def test_conversion_with_a_bad_field_is_400_and_stores_nothing(bot: Bot, body: dict, code: str) -> None:
    status, answer = await bot.admin("POST", "/api/v1/conversions", body)
    assert_error(status, answer, 400, code)
    status, answer = await bot.admin("GET", f"/api/v1/members/{SOME_USER}")
    assert_error(status, answer, 404, "UNKNOWN_MEMBER")
    assert not await bot.services.redis.exists(rkeys.order_owner("order-1"))
    assert not [k async for k in bot.services.redis.scan_iter(match=f"{rkeys.PREFIX}:order:*")]


@pytest.mark.parametrize(("body", "code"), [
    (with_(user_id=SOME_USER + "\n"), "INVALID_USER_ID"),
    (with_(order_id="order-1\n"), "INVALID_ORDER_ID"),
], ids=["user-id-newline", "order-id-newline"])
async def test_conversion_with_a_trailing_newline_in_an_id_is_400(bot: Bot, body: dict, code: str) -> None:
    status, answer = await bot.admin("POST", "/api/v1/conversions", body)
    assert_error(status, answer, 400, code)
    assert await bot.services.program.stats() == {"members": 0}


@pytest.mark.parametrize(("raw", "code"), [
    (b"order_id=order-1&amount=100", "INVALID_JSON"),
    (b"{\"order_id\": \"order-1\",", "INVALID_JSON"),
    (b"", "INVALID_JSON"),
    (b"\xff\xfe\x00", "INVALID_JSON"),
    (b"[{\"order_id\": \"order-1\"}]", "INVALID_BODY"),
    (b"\"order-1\"", "INVALID_BODY"),
    (b"null", "INVALID_BODY"),
], ids=["form", "truncated", "empty", "not-utf8", "array", "string", "null"])
async def test_conversion_body_that_is_not_a_json_object_is_400(bot: Bot, raw: bytes, code: str) -> None:
    headers = {"Authorization": "Bearer test-admin-token", "Content-Type": "application/json"}
    async with bot.http.post(bot.url + "/api/v1/conversions", data=raw, headers=headers) as r:
        status, answer = r.status, await r.json(content_type=None)
    assert_error(status, answer, 400, code)
    assert await bot.services.program.stats() == {"members": 0}


async def test_same_order_for_another_user_is_409_and_changes_nothing(bot: Bot) -> None:
    a, b = new_user_id(), new_user_id()
    first = await buy(bot, a, "order-7", 3050)
    status, answer = await bot.admin("POST", "/api/v1/conversions", {"order_id": "order-7", "user_id": b, "amount": 3050})
    assert_error(status, answer, 409, "ORDER_CONFLICT")
    status, answer = await bot.admin("GET", f"/api/v1/members/{b}")
    assert_error(status, answer, 404, "UNKNOWN_MEMBER")
    assert await points_of(bot, a) == first["points_awarded"] == 30
    assert (await bot.admin("GET", "/api/v1/stats"))[1]["orders"] == 1


# ---- conversions: points and refunds -------------------------------------------------------
@pytest.mark.parametrize(("amount", "points"), [(3050, 30), (99, 0), (100, 1), (199, 1), (0, 0), (100_000_000, 1_000_000)])
async def test_purchase_points_follow_the_rules(bot: Bot, amount: int, points: int) -> None:
    uid = new_user_id()
    answer = await buy(bot, uid, "order-1", amount)
    assert answer == {"order_id": "order-1", "points_awarded": points, "referral": None}
    assert await points_of(bot, uid) == points


async def test_occurred_at_is_accepted_in_iso_8601(bot: Bot) -> None:
    uid = new_user_id()
    # a few days ago, not a fixed date: points expire after 12 months, and the worker's clock would expire
    # a fixed past date's points while the test runs
    day = datetime.now(UTC) - timedelta(days=3)
    for i, when in enumerate([day.strftime("%Y-%m-%dT12:00:00Z"), day.strftime("%Y-%m-%dT21:00:00+09:00"),
                              day.strftime("%Y-%m-%d")]):
        status, answer = await bot.admin("POST", "/api/v1/conversions",
                                         {"order_id": f"o{i}", "user_id": uid, "amount": 500, "occurred_at": when})
        assert status == 200, answer
    assert await points_of(bot, uid) == 15


async def test_refund_reverses_once(bot: Bot) -> None:
    uid = new_user_id()
    await follow(bot, uid)
    await buy(bot, uid, "order-1", 3050)
    await buy(bot, uid, "order-2", 1000)
    assert await points_of(bot, uid) == 100 + 30 + 10

    status, answer = await bot.admin("POST", "/api/v1/conversions/order-1/refund")
    assert status == 200, answer
    assert answer["refunded"] is True and answer["already_refunded"] is False
    assert answer["points_reversed"] == 30
    assert await points_of(bot, uid) == 110

    status, again = await bot.admin("POST", "/api/v1/conversions/order-1/refund")
    assert status == 200, again
    assert again["refunded"] is False and again["already_refunded"] is True
    assert again["points_reversed"] == 0
    assert await points_of(bot, uid) == 110

    # a refunded order reported again awards nothing anew
    assert (await buy(bot, uid, "order-1", 3050))["points_awarded"] == 30
    assert await points_of(bot, uid) == 110


async def test_refund_of_an_unknown_order_is_404(bot: Bot) -> None:
    status, answer = await bot.admin("POST", "/api/v1/conversions/no-such-order/refund")
    assert_error(status, answer, 404, "UNKNOWN_ORDER")


async def test_refund_of_the_purchase_that_completed_a_referral_voids_it(bot: Bot) -> None:
    a, b = new_user_id(), new_user_id()
    await refer(bot, a, b)
    answer = await buy(bot, b, "order-1", 3000)
    assert answer == {"order_id": "order-1", "points_awarded": 30 + 300, "referral": {"status": "completed"}}
    await bot.idle()
    assert await points_of(bot, a) == 100 + 500
    assert await points_of(bot, b) == 100 + 30 + 300

    status, refund = await bot.admin("POST", "/api/v1/conversions/order-1/refund")
    assert status == 200, refund
    assert refund["refunded"] is True and refund["points_reversed"] == 30 + 300
    assert await points_of(bot, b) == 100
    assert await points_of(bot, a) == 100
    assert (await member(bot, a))["referrals"] == {"invited": 1, "pending": 0, "completed": 0}

    status, again = await bot.admin("POST", "/api/v1/conversions/order-1/refund")
    assert status == 200 and again["already_refunded"] is True, again
    assert await points_of(bot, b) == 100 and await points_of(bot, a) == 100

    # the friend's next purchase is not a first purchase: the referral stays void
    assert (await buy(bot, b, "order-2", 3000)) == {"order_id": "order-2", "points_awarded": 30,
                                                    "referral": {"status": "voided"}}
    assert await points_of(bot, a) == 100


# ---- adjustments ---------------------------------------------------------------------------
async def test_adjustments_up_and_down_are_applied_and_audited(bot: Bot) -> None:
    uid = new_user_id()
    await follow(bot, uid)
    url = f"/api/v1/members/{uid}/adjustments"
    status, answer = await bot.admin("POST", url, {"points": 250, "reason": "apology for a late parcel"})
    assert status == 200, answer
    assert answer["applied"] is True and answer["points"] == 350
    status, answer = await bot.admin("POST", url, {"points": -400, "reason": "correction"})
    assert status == 200, answer
    assert answer["applied"] is True and answer["points"] == -50  # a correction may go below zero
    assert await points_of(bot, uid) == -50

    audit = await audit_entries(bot, "adjust_points")
    assert [(e["member"], e["before"], e["after"], e["reason"]) for e in audit] == [
        (uid, "100", "350", "apology for a late parcel"), (uid, "350", "-50", "correction")]
    assert all(e["who"] == "admin-api" for e in audit)


async def test_adjustment_with_a_repeated_idempotency_key_applies_once(bot: Bot) -> None:
    uid = new_user_id()
    await follow(bot, uid)
    url = f"/api/v1/members/{uid}/adjustments"
    headers = {"Idempotency-Key": "ticket-4711"}
    first_status, first = await bot.admin("POST", url, {"points": 50, "reason": "goodwill"}, headers=headers)
    assert first_status == 200 and first["applied"] is True, first
    for _ in range(3):
        status, again = await bot.admin("POST", url, {"points": 50, "reason": "goodwill"}, headers=headers)
        assert status == 200 and again["applied"] is False, again
        assert again["points"] == 150
    assert await points_of(bot, uid) == 150
    assert len(await audit_entries(bot, "adjust_points")) == 1


@pytest.mark.parametrize(("body", "code"), [
    ({"points": 10}, "MISSING_FIELD"),
    ({"reason": "why"}, "MISSING_FIELD"),
    ({"points": 10, "reason": ""}, "INVALID_REASON"),
    ({"points": 10, "reason": "   "}, "INVALID_REASON"),
    ({"points": 10, "reason": "x" * 501}, "INVALID_REASON"),
    ({"points": 0, "reason": "nothing"}, "INVALID_POINTS"),
    ({"points": "10", "reason": "string"}, "INVALID_FIELD"),
    ({"points": 1.5, "reason": "float"}, "INVALID_FIELD"),
    ({"points": True, "reason": "bool"}, "INVALID_FIELD"),
    ({"points": 10, "reason": 7}, "INVALID_FIELD"),
    ({"points": 10_000_001, "reason": "too many"}, "INVALID_POINTS"),
], ids=lambda v: v if isinstance(v, str) else None)
async def test_refused_adjustment_changes_nothing_and_is_not_audited(bot: Bot, body: dict, code: str) -> None:
    uid = new_user_id()
    await follow(bot, uid)
    status, answer = await bot.admin("POST", f"/api/v1/members/{uid}/adjustments", body)
    assert_error(status, answer, 400, code)
    assert await points_of(bot, uid) == 100
    assert await audit_entries(bot, "adjust_points") == []


async def test_adjustment_for_an_unknown_member_is_404(bot: Bot) -> None:
    uid = new_user_id()
    status, answer = await bot.admin("POST", f"/api/v1/members/{uid}/adjustments", {"points": 10, "reason": "x"})
    assert_error(status, answer, 404, "UNKNOWN_MEMBER")
    assert not await bot.services.redis.exists(rkeys.member(uid))
    assert await audit_entries(bot, "adjust_points") == []


async def test_adjustment_for_a_malformed_member_id_is_400(bot: Bot) -> None:
    status, answer = await bot.admin("POST", "/api/v1/members/U123/adjustments", {"points": 10, "reason": "x"})
    assert_error(status, answer, 400, "INVALID_USER_ID")


# ---- members -------------------------------------------------------------------------------
async def test_unknown_member_is_404(bot: Bot) -> None:
    status, answer = await bot.admin("GET", f"/api/v1/members/{new_user_id()}")
    assert_error(status, answer, 404, "UNKNOWN_MEMBER")


@pytest.mark.parametrize("uid", ["U123", "x" * 33, "U" + "G" * 32, "U" + "a" * 33, "C" + "a" * 32])
async def test_malformed_member_id_is_400(bot: Bot, uid: str) -> None:
    status, answer = await bot.admin("GET", f"/api/v1/members/{uid}")
    assert_error(status, answer, 400, "INVALID_USER_ID")


async def test_member_view_has_the_contract_fields(bot: Bot) -> None:
    uid = new_user_id()
    await follow(bot, uid)
    view = await member(bot, uid)
    assert {"user_id", "points", "pending_points", "tier", "referrals"} <= set(view)
    assert view["user_id"] == uid and view["points"] == 100 and view["pending_points"] == 0
    assert view["tier"] == "bronze"
    assert view["referrals"] == {"invited": 0, "pending": 0, "completed": 0}


# ---- broadcasts ----------------------------------------------------------------------------
async def test_broadcast_reaches_every_follower_once_and_no_blocked_member(bot: Bot) -> None:
    platform = bot.platform
    followers = [new_user_id() for _ in range(3)]
    blocked = new_user_id()
    for uid in [*followers, blocked]:
        await follow(bot, uid)
    assert await platform.send(platform.unfollow(blocked)) == 200
    await bot.idle()
    mark = len(platform.calls)

    status, created = await bot.admin("POST", "/api/v1/broadcasts", {"text": "hi"})
    assert status == 202, created
    assert set(created) == {"id"}
    job = await wait_for_broadcast(bot, created["id"])
    assert job["status"] == "done", job
    assert (job["total"], job["sent"]) == (3, 3)

    calls = [c for c in platform.calls[mark:] if c.status == 200]
    assert {c.endpoint for c in calls} == {"multicast"}
    for uid in followers:
        assert platform.said_to(uid, mark) == [{"type": "text", "text": "hi"}]
    assert all(blocked not in c.body["to"] for c in platform.calls[mark:] if c.endpoint == "multicast")
    assert platform.said_to(blocked, mark) == []
    assert len(await audit_entries(bot, "broadcast")) == 1


async def test_broadcast_of_line_message_objects(bot: Bot) -> None:
    platform = bot.platform
    uid = new_user_id()
    await follow(bot, uid)
    mark = len(platform.calls)
    messages = [{"type": "text", "text": "セール開始"}, {"type": "sticker", "packageId": "446", "stickerId": "1988"}]
    status, created = await bot.admin("POST", "/api/v1/broadcasts", {"messages": messages, "segment": "all"})
    assert status == 202, created
    assert (await wait_for_broadcast(bot, created["id"]))["status"] == "done"
    assert platform.said_to(uid, mark) == messages


@pytest.mark.parametrize(("body", "code"), [
    ({}, "INVALID_MESSAGES"),
    ({"segment": "all"}, "INVALID_MESSAGES"),
    ({"text": ""}, "INVALID_TEXT"),
    ({"text": 5}, "INVALID_TEXT"),
    ({"text": "x" * 5001}, "INVALID_TEXT"),
    ({"messages": []}, "INVALID_MESSAGES"),
    ({"messages": "hi"}, "INVALID_MESSAGES"),
    ({"messages": [{"type": "text", "text": "hi"}] * 6}, "INVALID_MESSAGES"),
    ({"messages": [{"type": "bogus", "text": "hi"}]}, "INVALID_MESSAGES"),
    ({"messages": [{"type": "text"}]}, "INVALID_MESSAGES"),
    ({"messages": ["hi"]}, "INVALID_MESSAGES"),
    ({"messages": [None]}, "INVALID_MESSAGES"),
    ({"text": "hi", "segment": {"type": "tier", "tier": "gold"}}, "INVALID_SEGMENT"),
    ({"text": "hi", "segment": "gold"}, "INVALID_SEGMENT"),
], ids=lambda v: v if isinstance(v, str) else None)
async def test_invalid_broadcast_is_400_and_nothing_is_queued(bot: Bot, body: dict, code: str) -> None:
    status, answer = await bot.admin("POST", "/api/v1/broadcasts", body)
    assert_error(status, answer, 400, code)
    assert await bot.services.redis.llen(keys.BROADCAST_QUEUE) == 0
    assert await broadcast_keys(bot) == []
    assert await audit_entries(bot, "broadcast") == []


async def test_broadcast_message_without_a_type_is_400(bot: Bot) -> None:
    status, answer = await bot.admin("POST", "/api/v1/broadcasts", {"messages": [{"text": "hi"}]})
    assert_error(status, answer, 400, "INVALID_MESSAGES")
    assert await bot.services.redis.llen(keys.BROADCAST_QUEUE) == 0


@pytest.mark.parametrize("job_id", ["0" * 32, "nope", "f" * 64])
async def test_unknown_broadcast_is_404(bot: Bot, job_id: str) -> None:
    status, answer = await bot.admin("GET", f"/api/v1/broadcasts/{job_id}")
    assert_error(status, answer, 404, "UNKNOWN_BROADCAST")


# ---- stats ---------------------------------------------------------------------------------
async def test_stats_count_members_orders_and_referrals(bot: Bot) -> None:
    status, empty = await bot.admin("GET", "/api/v1/stats")
    assert status == 200 and {k: v for k, v in empty.items() if k != "report"} == {"members": 0}, empty

    a, b = new_user_id(), new_user_id()
    await refer(bot, a, b)
    await buy(bot, b, "order-1", 3000)
    status, stats = await bot.admin("GET", "/api/v1/stats")
    assert status == 200, stats
    assert stats["members"] == 2
    assert stats["orders"] == 1 and stats["revenue_yen"] == 3000
    assert stats["referrals_pending"] == 1 and stats["referrals_completed"] == 1
    assert all(isinstance(v, int) for k, v in stats.items() if k != "report")  # report: the numbers by day
