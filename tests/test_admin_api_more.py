"""The rest of the admin API: auth on every new endpoint, malformed requests refused with nothing changed,
the self-referral review (fingerprints) with approve/void paying exactly once, referrals by status, ledger
and audit paging, CSV exports, staff, stats by day, and the OpenAPI document matching the app's routes."""
from __future__ import annotations

import csv
import io

import pytest
from openapi_spec_validator import validate

from linesim.platform import new_user_id
from rewards import keys as rkeys
from tests.support.harness import ADMIN, Bot
from tests.test_admin_api import assert_error, buy, member, points_of, refer

SOME = "U" + "b" * 32
NEW_CALLS = [
    ("GET", "/api/v1/members?code=ABCD2345", None),
    ("GET", f"/api/v1/members/{SOME}/ledger", None),
    ("GET", "/api/v1/referrals?status=review", None),
    ("POST", f"/api/v1/referrals/{SOME}/approve", None),
    ("POST", f"/api/v1/referrals/{SOME}/void", None),
    ("GET", "/api/v1/audit", None),
    ("GET", "/api/v1/exports/members.csv", None),
    ("GET", "/api/v1/exports/ledger.csv", None),
    ("GET", "/api/v1/staff", None),
    ("POST", f"/api/v1/staff/{SOME}", None),
    ("DELETE", f"/api/v1/staff/{SOME}", None),
    ("GET", "/api/v1/openapi.json", None),
    ("GET", "/api/v1/stats?days=7", None),
]
IDS = [f"{m} {p}" for m, p, _ in NEW_CALLS]


async def audit_length(bot: Bot) -> int:
    return int(await bot.services.redis.xlen(rkeys.AUDIT))


async def csv_rows(bot: Bot, path: str) -> list[dict[str, str]]:
    async with bot.http.get(bot.url + path, headers={"Authorization": f"Bearer {ADMIN}"}) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
        return list(csv.DictReader(io.StringIO((await r.read()).decode())))


async def review_referral(bot: Bot, fingerprint: str = "fp-hash-1") -> tuple[str, str]:
    """A refers B; A's own order and then B's first order carry the same fingerprint: B's referral waits."""
    a, b = new_user_id(), new_user_id()
    await refer(bot, a, b)
    status, body = await bot.admin("POST", "/api/v1/conversions", {"order_id": f"a-{a[-6:]}", "user_id": a,
                                                                   "amount": 1000, "fingerprint": fingerprint})
    assert status == 200, body
    status, body = await bot.admin("POST", "/api/v1/conversions", {"order_id": f"b-{b[-6:]}", "user_id": b,
                                                                   "amount": 2000, "fingerprint": fingerprint})
    assert status == 200 and body["referral"] == {"status": "review"}, body
    return a, b


# ---- auth --------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "body"), NEW_CALLS, ids=IDS)
async def test_every_new_endpoint_wants_the_token(bot: Bot, method: str, path: str, body: object) -> None:
    status, answer = await bot.admin(method, path, body, token=None)
    assert_error(status, answer, 401, "UNAUTHENTICATED")
    status, answer = await bot.admin(method, path, body, token="wrong-token")
    assert_error(status, answer, 403, "FORBIDDEN")
    assert await audit_length(bot) == 0
    assert not await bot.services.redis.exists(rkeys.PREFIX + ":staff")


# ---- malformed requests ------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/api/v1/members", 400, "MISSING_PARAMETER"),
    ("GET", "/api/v1/members?code=" + "X" * 301, 400, "INVALID_CODE"),
    ("GET", "/api/v1/members/U123/ledger", 400, "INVALID_USER_ID"),
    ("GET", f"/api/v1/members/{SOME}/ledger?limit=0", 400, "INVALID_LIMIT"),
    ("GET", f"/api/v1/members/{SOME}/ledger?offset=-1", 400, "INVALID_OFFSET"),
    ("GET", f"/api/v1/members/{SOME}/ledger", 404, "UNKNOWN_MEMBER"),
    ("GET", "/api/v1/referrals", 400, "MISSING_PARAMETER"),
    ("GET", "/api/v1/referrals?status=maybe", 400, "INVALID_STATUS"),
    ("GET", "/api/v1/referrals?status=review&limit=501", 400, "INVALID_LIMIT"),
    ("POST", "/api/v1/referrals/nobody/approve", 400, "INVALID_USER_ID"),
    ("POST", f"/api/v1/referrals/{SOME}/approve", 404, "UNKNOWN_REFERRAL"),
    ("POST", f"/api/v1/referrals/{SOME}/void", 404, "UNKNOWN_REFERRAL"),
    ("GET", "/api/v1/audit?after=yesterday", 400, "INVALID_AFTER"),
    ("GET", "/api/v1/audit?limit=abc", 400, "INVALID_LIMIT"),
    ("POST", "/api/v1/staff/not-a-user", 400, "INVALID_USER_ID"),
    ("DELETE", "/api/v1/staff/U" + "B" * 32, 400, "INVALID_USER_ID"),
    ("GET", "/api/v1/stats?days=0", 400, "INVALID_DAYS"),
    ("GET", "/api/v1/stats?days=91", 400, "INVALID_DAYS"),
    ("GET", "/api/v1/stats?days=x", 400, "INVALID_DAYS"),
])
async def test_malformed_requests_are_refused_and_change_nothing(bot: Bot, method: str, path: str, status: int,
                                                                 code: str) -> None:
    got, answer = await bot.admin(method, path)
    assert_error(got, answer, status, code)
    assert await audit_length(bot) == 0
    assert not await bot.services.redis.exists(rkeys.PREFIX + ":staff")


@pytest.mark.parametrize(("raw", "code"), [
    (b"{not json", "INVALID_JSON"),
    (b"[1, 2]", "INVALID_BODY"),
    (b'{"reason": 5}', "INVALID_FIELD"),
    (b'{"why": "x"}', "UNKNOWN_FIELD"),
    (('{"reason": "' + "x" * 501 + '"}').encode(), "INVALID_REASON"),
])
async def test_a_bad_decision_body_leaves_the_review_alone(bot: Bot, raw: bytes, code: str) -> None:
    _, friend = await review_referral(bot)
    before = await audit_length(bot)
    for decision in ("approve", "void"):
        async with bot.http.post(f"{bot.url}/api/v1/referrals/{friend}/{decision}", data=raw,
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as r:
            assert_error(r.status, await r.json(), 400, code)
    assert await bot.services.redis.hget(rkeys.referral(friend), "status") == b"review"
    assert await audit_length(bot) == before


async def test_a_bad_fingerprint_is_400_and_stores_nothing(bot: Bot) -> None:
    status, answer = await bot.admin("POST", "/api/v1/conversions", {"order_id": "o-1", "user_id": SOME,
                                                                     "amount": 100, "fingerprint": "has space"})
    assert_error(status, answer, 400, "INVALID_FINGERPRINT")
    assert not await bot.services.redis.exists(rkeys.order_owner("o-1"))


# ---- self-referral review ----------------------------------------------------------------
async def test_a_repeated_fingerprint_holds_the_referral_and_approval_pays_both_once(bot: Bot) -> None:
    a, b = await review_referral(bot)
    a_before, b_before = await points_of(bot, a), await points_of(bot, b)
    rules = bot.services.program.rules
    assert (await member(bot, a))["referrals"] == {"invited": 1, "pending": 1, "completed": 0}
    status, listed = await bot.admin("GET", "/api/v1/referrals?status=review")
    assert status == 200 and [r["friend_id"] for r in listed["referrals"]] == [b], listed
    assert listed["referrals"][0]["referrer_id"] == a and listed["referrals"][0]["review_reason"] == "FINGERPRINT"

    status, first = await bot.admin("POST", f"/api/v1/referrals/{b}/approve", {"reason": "same family, fine"})
    assert status == 200 and first == {"friend_id": b, "referrer_id": a, "status": "completed", "changed": True}
    status, again = await bot.admin("POST", f"/api/v1/referrals/{b}/approve")
    assert status == 200 and again["changed"] is False
    await bot.idle()
    assert await points_of(bot, a) == a_before + rules.referrer_points
    assert await points_of(bot, b) == b_before + rules.friend_points
    assert (await member(bot, a))["referrals"]["completed"] == 1
    status, refused = await bot.admin("POST", f"/api/v1/referrals/{b}/void")
    assert_error(status, refused, 409, "NOT_VOIDABLE")
    audit = [e for e in (await bot.admin("GET", "/api/v1/audit"))[1]["entries"] if e["what"] == "approve_referral"]
    assert len(audit) == 1 and audit[0]["who"] == "api" and audit[0]["before"] == "review"
    assert audit[0]["after"] == "completed" and audit[0]["member"] == b
    _, stats = await bot.admin("GET", "/api/v1/stats?days=1")
    assert stats["report"]["referrals"]["review"] == 1 and stats["report"]["referrals"]["completed"] == 1


async def test_voiding_a_reviewed_referral_pays_nobody(bot: Bot) -> None:
    a, b = await review_referral(bot)
    a_before, b_before = await points_of(bot, a), await points_of(bot, b)
    status, answer = await bot.admin("POST", f"/api/v1/referrals/{b}/void")
    assert status == 200 and answer["status"] == "voided" and answer["changed"], answer
    assert (await bot.admin("POST", f"/api/v1/referrals/{b}/void"))[1]["changed"] is False
    status, refused = await bot.admin("POST", f"/api/v1/referrals/{b}/approve")
    assert_error(status, refused, 409, "NOT_IN_REVIEW")
    assert (await points_of(bot, a), await points_of(bot, b)) == (a_before, b_before)
    assert (await member(bot, a))["referrals"] == {"invited": 1, "pending": 0, "completed": 0}
    status, listed = await bot.admin("GET", "/api/v1/referrals?status=refused")
    assert [r["friend_id"] for r in listed["referrals"]] == [b] and listed["referrals"][0]["void_reason"] == "STAFF"


async def test_a_different_fingerprint_completes_as_usual(bot: Bot) -> None:
    a, b = new_user_id(), new_user_id()
    await refer(bot, a, b)
    await bot.admin("POST", "/api/v1/conversions", {"order_id": "a-1", "user_id": a, "amount": 100,
                                                    "fingerprint": "fp-a"})
    status, body = await bot.admin("POST", "/api/v1/conversions", {"order_id": "b-1", "user_id": b, "amount": 100,
                                                                   "fingerprint": "fp-b"})
    assert body["referral"] == {"status": "completed"}


async def test_refunding_the_reviewed_order_voids_the_referral(bot: Bot) -> None:
    a, b = await review_referral(bot)
    status, body = await bot.admin("POST", f"/api/v1/conversions/b-{b[-6:]}/refund")
    assert status == 200 and body["refunded"], body
    assert await bot.services.redis.hget(rkeys.referral(b), "status") == b"voided"
    assert (await member(bot, a))["referrals"]["pending"] == 0


# ---- reading -----------------------------------------------------------------------------
async def test_member_search_ledger_paging_and_pending_list(bot: Bot) -> None:
    a, b = new_user_id(), new_user_id()
    await refer(bot, a, b)
    code = await bot.services.program.invite_code(a)
    status, found = await bot.admin("GET", f"/api/v1/members?code={code.lower()}")
    assert status == 200 and [m["user_id"] for m in found["members"]] == [a], found
    assert (await bot.admin("GET", "/api/v1/members?code=ZZZZ9999"))[1]["members"] == []
    await buy(bot, b, "o-1", 1000)
    await buy(bot, b, "o-2", 1000)
    status, page1 = await bot.admin("GET", f"/api/v1/members/{b}/ledger?limit=2")
    assert status == 200 and page1["total"] >= 4 and len(page1["entries"]) == 2
    status, page2 = await bot.admin("GET", f"/api/v1/members/{b}/ledger?limit=2&offset=2")
    ids = [e["id"] for e in page1["entries"] + page2["entries"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4
    assert (await bot.admin("GET", "/api/v1/referrals?status=pending"))[1]["total"] == 0
    assert (await bot.admin("GET", "/api/v1/referrals?status=completed"))[1]["total"] == 1


async def test_audit_pages_by_cursor(bot: Bot) -> None:
    uid = new_user_id()
    await bot.services.program.see(uid, "follow", 1)
    for n in range(5):
        status, _ = await bot.admin("POST", f"/api/v1/members/{uid}/adjustments", {"points": n + 1, "reason": "t"})
        assert status == 200
    status, first = await bot.admin("GET", "/api/v1/audit?limit=3")
    assert status == 200 and len(first["entries"]) == 3 and first["next"]
    _, rest = await bot.admin("GET", f"/api/v1/audit?limit=3&after={first['next']}")
    assert len(rest["entries"]) == 2 and rest["next"] is None
    assert [int(e["after"]) for e in first["entries"] + rest["entries"]] == [1, 3, 6, 10, 15]


async def test_csv_exports_stream_every_member_and_entry(bot: Bot) -> None:
    a, b = new_user_id(), new_user_id()
    await refer(bot, a, b)
    await buy(bot, b, "o-1", 1000)
    await bot.idle()
    members = await csv_rows(bot, "/api/v1/exports/members.csv")
    assert {r["user_id"] for r in members} == {a, b}
    by_id = {r["user_id"]: r for r in members}
    assert int(by_id[a]["points"]) == await points_of(bot, a) and by_id[a]["referrals_completed"] == "1"
    ledger = await csv_rows(bot, "/api/v1/exports/ledger.csv")
    for uid in (a, b):
        rows = [r for r in ledger if r["user_id"] == uid]
        assert len(rows) == len(await bot.services.program.ledger(uid))
        assert sum(int(r["delta"]) for r in rows) == await points_of(bot, uid)


async def test_staff_are_added_and_removed_with_an_audit(bot: Bot) -> None:
    status, body = await bot.admin("POST", f"/api/v1/staff/{SOME}")
    assert status == 200 and body["changed"]
    assert (await bot.admin("POST", f"/api/v1/staff/{SOME}"))[1]["changed"] is False
    assert (await bot.admin("GET", "/api/v1/staff"))[1] == {"configured": [], "added": [SOME]}
    status, body = await bot.admin("DELETE", f"/api/v1/staff/{SOME}")
    assert status == 200 and body["changed"]
    entries = (await bot.admin("GET", "/api/v1/audit"))[1]["entries"]
    assert [(e["what"], e["member"], e["who"]) for e in entries] == [("add_staff", SOME, "api"),
                                                                    ("remove_staff", SOME, "api")]


async def test_stats_report_by_day(bot: Bot) -> None:
    a, b = new_user_id(), new_user_id()
    await refer(bot, a, b)
    await buy(bot, b, "o-1", 1000)
    await bot.idle()
    status, stats = await bot.admin("GET", "/api/v1/stats?days=90")
    assert status == 200
    report = stats["report"]
    assert len(report["by_day"]) == 90 and report["invites_shown"] == 1 and report["codes_sent"] == 1
    assert report["referrals"]["completed"] == 1 and report["top_referrers"] == [{"user_id": a, "completed": 1}]
    assert report["referred_revenue_yen"] == 1000 and report["k_factor"] == 0.5


# ---- OpenAPI -----------------------------------------------------------------------------
async def test_openapi_describes_exactly_the_routes(bot: Bot) -> None:
    status, doc = await bot.admin("GET", "/api/v1/openapi.json")
    assert status == 200 and isinstance(doc, dict)
    validate(doc)
    routes = {(r.method.lower(), r.resource.canonical) for r in bot.app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith(("/api/v1", "/liff/v1", "/webhooks"))
              and r.method != "HEAD"}
    described = {(method, path) for path, operations in doc["paths"].items() for method in operations}
    assert routes == described
