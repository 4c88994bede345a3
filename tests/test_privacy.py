"""A member's data on request (APPI): the export holds every key that names the member; the erasure leaves no
personal field anywhere in Redis, keeps the ledger adding up under a pseudonym and every stat as it was; 404s
afterwards; the chat's data link and 退会 flow; Shopify's customers/redact reaches the same erasure."""
from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

from linesim.platform import new_user_id, text_of
from rewards import keys, ledger_codec
from rewards.names import masked_label
from rewards.program import Program
from rewards.stats import report
from tests.support.harness import Bot, BotWith, converse
from tests.support.rules_helpers import variant
from tests.test_account_link import link, member
from tests.test_admin_api import refer
from tests.test_shopify_webhooks import SECRET as SHOPIFY_SECRET
from tests.test_shopify_webhooks import send

WELCOME = '[referral.friend_coupon]\nkind = "generated"\nyen_off = 500\nprefix = "WELCOME-"\n'
SHOP = "https://shop.example.test/line/login?from=line"
NICKNAME = "ぷらいばし花子"
BIRTHDAY = "11-29"
DATA_LINK = re.compile(r"https://shop\.example\.test(/me/data\?token=[A-Za-z0-9_.-]+)")


@pytest.fixture
async def bot(bot_with: BotWith, tmp_path: Path) -> Bot:
    return await bot_with(shop_link_url=SHOP, shopify_webhook_secret=SHOPIFY_SECRET,
                          rewards_config=variant(tmp_path, WELCOME, notifications__quiet_hours='""'))


async def everything(bot: Bot) -> dict[str, bytes]:
    """Every key of the database with its whole content, as bytes to search."""
    r = bot.services.redis
    found: dict[str, bytes] = {}
    async for raw in r.scan_iter(count=1000):
        key = raw.decode()
        kind = (await r.type(key)).decode()
        if kind == "string":
            parts = [await r.get(key) or b""]
        elif kind == "hash":
            parts = [p for kv in (await r.hgetall(key)).items() for p in kv]
        elif kind == "set":
            parts = list(await r.smembers(key))
        elif kind == "zset":
            parts = [m for m, _ in await r.zrange(key, 0, -1, withscores=True)]
        elif kind == "list":
            parts = await r.lrange(key, 0, -1)
        elif kind == "stream":
            parts = [p for _, fields in await r.xrange(key) for kv in fields.items() for p in kv]
        else:
            continue
        found[key] = key.encode() + b"\0" + b"\0".join(parts)
    return found


def holding(db: dict[str, bytes], *needles: str) -> set[str]:
    return {key for key, blob in db.items() if any(n.encode() in blob for n in needles)}


async def ledger_adds_up(program: Program, uid: str) -> None:
    """The invariants of tests/test_ledger_properties.py, for any member."""
    r = program.redis
    record = await keys.read_member(r, uid)
    points, pending, debt = (int(record.get(k, 0)) for k in ("points", "pending_points", "debt"))
    entries = await program.ledger(uid)
    assert sum(e["avail"] for e in entries) == points and sum(e["pend"] for e in entries) == pending
    stored = ledger_codec.split_ops(await r.hgetall(keys.ops(uid)))
    assert sorted(stored.entries) == list(range(1, len(entries) + 1))
    spendable = sum(lot.remaining for lot in stored.lots.values() if lot.hold_until == 0)
    held = sum(lot.remaining for lot in stored.lots.values() if lot.hold_until != 0)
    assert points == spendable - debt and pending == held and debt >= 0
    ops = [e["op"] for e in entries]
    assert len(ops) == len(set(ops)) == len(stored.op_of)


async def pseudonyms(program: Program) -> list[str]:
    return [uid for uid in await program.member_ids() if uid.startswith("X")]


async def test_export_holds_every_key_and_erasure_leaves_nothing_personal_with_the_numbers_unchanged(bot: Bot) -> None:
    program, platform = bot.services.program, bot.platform
    a, b, d = new_user_id(), new_user_id(), new_user_id()
    customer = "cust-privacy-777"
    await refer(bot, a, b)  # a invited b (b has a welcome coupon)
    status, bought = await bot.admin("POST", "/api/v1/conversions", {"order_id": "priv-1", "user_id": b,
                                                                       "amount": 40_000, "fingerprint": "fp-b-1"})
    assert status == 200 and bought["referral"] == {"status": "completed"}, bought
    invite = await converse(platform, b, platform.text(b, "招待"))  # b invites d
    code = re.search(r"/i/([A-Z0-9]+)", text_of(invite)).group(1)  # type: ignore[union-attr]
    await converse(platform, d, platform.follow(d))
    await converse(platform, d, platform.text(d, code))
    await program.set_nickname(b, NICKNAME, True)
    status, _ = await bot.admin("PATCH", f"/api/v1/members/{b}", {"birthday": BIRTHDAY})
    assert status == 200
    await program.member_token(b)
    offer = await bot.services.catalog.show(b, "coffee")
    assert offer is not None and (await bot.services.catalog.confirm(b, offer.claim_id)).ok
    await link(bot, b, customer)
    await program.prompts.gate(b, "c:test")
    await program.prompts.schedule_reminder(b, program.now_ms() + 86_400_000)
    await program.shares.record(b, code)
    status, _ = await bot.admin("POST", f"/api/v1/members/{b}/adjustments", {"points": 7, "reason": "thanks"})
    assert status == 200
    await bot.idle()

    status, export = await bot.admin("GET", f"/api/v1/members/{b}/export")
    assert status == 200 and isinstance(export, dict)
    assert export["member"]["nickname"] == NICKNAME and export["member"]["birthday"] == BIRTHDAY
    assert export["customer_link"]["customer_id"] == customer and export["orders"]["priv-1"]
    assert export["referral"]["referrer"] == a and d in export["referrals_made"]
    assert export["coupons"] and export["friend_coupon_codes"] and export["claims"] and export["prompts"]
    assert export["shares"] and export["fingerprints"] == ["fp-b-1"] and export["audit"]
    db = await everything(bot)
    missing = holding(db, b) - set(export["keys"])
    assert not missing, f"keys naming the member that the export leaves out: {sorted(missing)}"

    totals_before, report_before = await program.stats(), await report(program)
    a_before, d_before = await member(bot, a), await member(bot, d)
    points_b = (await member(bot, b))["points"]
    status, erased = await bot.admin("DELETE", f"/api/v1/members/{b}")
    assert status == 200 and erased == {"user_id": b, "erased": True, "points_forfeited": points_b}, erased

    for method, path in (("DELETE", f"/api/v1/members/{b}"), ("GET", f"/api/v1/members/{b}/export"),
                         ("GET", f"/api/v1/members/{b}")):
        status, answer = await bot.admin(method, path)
        assert status == 404 and answer["error"]["code"] == "UNKNOWN_MEMBER", (method, path, answer)
    db = await everything(bot)
    assert not holding(db, b, NICKNAME, customer, "fp-b-1"), sorted(holding(db, b, NICKNAME, customer, "fp-b-1"))
    assert not [k for k, blob in db.items() if BIRTHDAY.encode() in blob.split(b"\0")], "the birthday is kept"
    [pseudo] = await pseudonyms(program)
    await ledger_adds_up(program, pseudo)
    for uid in (a, d):
        await ledger_adds_up(program, uid)
    assert (await keys.read_member(bot.services.redis, pseudo))["points"] == "0"
    totals = await program.stats()
    assert totals.pop("points_forfeited") == points_b and totals.pop("members_erased") == 1
    assert totals == totals_before
    assert await report(program) | {"top_referrers": None} == report_before | {"top_referrers": None}
    assert [r["user_id"] for r in (await report(program))["top_referrers"]] == \
        [pseudo if r["user_id"] == b else r["user_id"] for r in report_before["top_referrers"]]
    assert await member(bot, a) == a_before and await member(bot, d) == d_before  # the other sides unchanged
    _, audit = await bot.admin("GET", "/api/v1/audit?limit=500")
    erasure = [e for e in audit["entries"] if e.get("what") == "member_erased"]  # type: ignore[index]
    assert erasure and erasure[0]["member"] == pseudo and erasure[0]["who"] == "admin-api"

    # the same LINE user again: a new member, paid no sign-up points, not referable
    mark = len(platform.calls)
    await converse(platform, b, platform.follow(b))
    assert (await member(bot, b))["points"] == 0
    invite = await converse(platform, a, platform.text(a, "招待"))
    a_code = re.search(r"/i/([A-Z0-9]+)", text_of(invite)).group(1)  # type: ignore[union-attr]
    await converse(platform, b, platform.text(b, a_code))
    assert (await member(bot, a))["referrals"]["invited"] == 1, "an erased person was referred again"
    assert platform.said_to(b, mark)


async def test_a_crash_midway_is_finished_by_the_next_delete_or_the_clock(bot: Bot,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    program = bot.services.program
    uid = new_user_id()
    await converse(bot.platform, uid, bot.platform.follow(uid))
    await program.set_nickname(uid, NICKNAME, True)
    failing = program.privacy._rewrite_audit

    async def crash(*args: Any) -> None:
        raise ConnectionError("the process died here")

    monkeypatch.setattr(program.privacy, "_rewrite_audit", crash)
    with pytest.raises(ConnectionError):
        await program.privacy.erase(uid, by="admin-api")
    assert not await program.exists(uid) and await program.privacy.erasing(uid)
    monkeypatch.setattr(program.privacy, "_rewrite_audit", failing)
    # the next DELETE and the clock's sweep at once: the plan is there, both finish it, as one
    (status, answer), _ = await asyncio.gather(bot.admin("DELETE", f"/api/v1/members/{uid}"),
                                               program.privacy.finish_all())
    assert status == 200 and answer["points_forfeited"] == 100, answer
    assert not await program.privacy.erasing(uid) and await program.privacy.was_erased(uid)
    assert (await bot.admin("DELETE", f"/api/v1/members/{uid}"))[0] == 404
    assert await program.privacy.finish_all() == 0
    [pseudo] = await pseudonyms(program)  # one pseudonym however often it ran
    await ledger_adds_up(program, pseudo)
    assert [e["kind"] for e in await program.ledger(pseudo)] == ["signup", "forfeit"]
    assert not holding(await everything(bot), uid, NICKNAME)


def _postbacks(messages: list[dict]) -> dict[str, str]:
    items = [i for m in messages for i in (m.get("quickReply") or {}).get("items", [])]
    return {i["action"]["label"]: i["action"]["data"] for i in items if i["action"]["type"] == "postback"}


async def test_in_chat_a_member_reads_their_data_by_a_link_that_expires_and_is_forgotten_after_confirming(
        bot: Bot) -> None:
    program, platform = bot.services.program, bot.platform
    referrer, uid = new_user_id(), new_user_id()
    await refer(bot, referrer, uid)
    said = await converse(platform, uid, platform.text(uid, "データ"))
    path = DATA_LINK.search(text_of(said))
    assert path, text_of(said)
    async with bot.http.get(bot.url + path.group(1)) as r:
        assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
        mine = await r.json()
    assert mine["user_id"] == uid and mine["ledger"][0]["op"] == "signup"
    assert referrer not in str(mine) and mine["referral"]["referrer"] == f"member-{masked_label(referrer)}"
    async with bot.http.get(bot.url + path.group(1)[:-2] + "xx") as r:
        assert r.status == 404  # a token edited by hand
    program.clock = lambda: time.time() + 16 * 60
    async with bot.http.get(bot.url + path.group(1)) as r:
        assert r.status == 404 and (await r.json())["error"]["code"] == "INVALID_LINK"
    program.clock = time.time

    asked = await converse(platform, uid, platform.text(uid, "退会"))
    assert "100" in text_of(asked)  # the points that will be forfeited
    buttons = _postbacks(asked)
    assert set(buttons) == {"退会する", "やめる"}
    told = await converse(platform, uid, platform.postback(uid, buttons["やめる"]))
    assert "そのまま" in text_of(told) and (await member(bot, uid))["points"] == 100
    asked = await converse(platform, uid, platform.text(uid, "退会"))
    told = await converse(platform, uid, platform.postback(uid, _postbacks(asked)["退会する"]))
    assert "削除しました" in text_of(told) and not told[-1].get("quickReply")
    assert await program.privacy.was_erased(uid)
    assert (await bot.admin("GET", f"/api/v1/members/{uid}/export"))[0] == 404
    async with bot.http.get(bot.url + path.group(1)) as r:
        assert r.status == 404
    # the old button again (a new member now, made by this very tap): it erases nothing
    told = await converse(platform, uid, platform.postback(uid, _postbacks(asked)["退会する"]))
    assert "有効期限" in text_of(told) and await program.exists(uid)
    assert platform.violations == []


async def test_shopifys_customers_redact_erases_the_linked_member(bot: Bot) -> None:
    program = bot.services.program
    uid = new_user_id()
    await converse(bot.platform, uid, bot.platform.follow(uid))
    await link(bot, uid, "8800123")
    await send(bot, "customers/redact", {"shop_id": 1, "shop_domain": "shokai-test.myshopify.com",
                                         "customer": {"id": 8800123, "email": "x@example.test"},
                                         "orders_to_redact": []})
    assert not await program.exists(uid) and await program.privacy.was_erased(uid)
    assert not holding(await everything(bot), uid, "8800123")
    _, audit = await bot.admin("GET", "/api/v1/audit?limit=500")
    assert [e["who"] for e in audit["entries"] if e.get("what") == "member_erased"] == ["shopify"]  # type: ignore[index]
