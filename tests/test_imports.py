"""CSV imports of what the shop already has (bot/web/api/imports.py, rewards/imports.py): members as friends from
before with an opening balance and a customer link, past orders that count for "already a customer" and tiers but
earn nothing; the same file again changes nothing; bad rows reported by line and code, storing nothing; a long file
as a job with progress.
"""
import asyncio
import re
from pathlib import Path

from linesim.platform import new_user_id, text_of
from rewards import keys as rkeys
from tests.support.harness import ADMIN, PUBLIC, Bot, BotWith, converse
from tests.support.rules_helpers import variant

INVITE = re.compile(re.escape(PUBLIC) + r"/i/([A-Z0-9]+)|https://liff\.line\.me/[^?]+\?code=([A-Z0-9]+)")


async def upload(bot: Bot, kind: str, body: str | bytes, content_type: str = "text/csv",
                 token: str | None = ADMIN) -> tuple[int, object]:
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = body.encode() if isinstance(body, str) else body
    async with bot.http.post(f"{bot.url}/api/v1/imports/{kind}", data=data, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def member(bot: Bot, uid: str) -> dict:
    status, body = await bot.admin("GET", f"/api/v1/members/{uid}")
    assert status == 200, body
    assert isinstance(body, dict)
    return body


async def state(bot: Bot, *uids: str) -> list[object]:
    """Everything an import writes for these members: their record and ledger, their links."""
    program = bot.services.program
    out: list[object] = []
    for uid in uids:
        out.append(await bot.services.redis.hgetall(rkeys.member(uid)))
        out.append(await program.points_ledger.entries(uid))
        out.append(await program.links.customer_of(uid))
    return out


async def invite_code(bot: Bot, uid: str) -> str:
    platform = bot.platform
    await converse(platform, uid, platform.follow(uid))
    said = await converse(platform, uid, platform.text(uid, "招待"))
    found = INVITE.search(text_of(said))
    assert found, text_of(said)
    return found.group(1) or found.group(2)


# ---- members -------------------------------------------------------------------------------------------------
async def test_a_good_file_imports_and_the_same_file_again_changes_nothing(bot: Bot) -> None:
    a, b, c = new_user_id(), new_user_id(), new_user_id()
    csv = (f"user_id,customer_id,points,joined_at\n{a},cust-1,500,2024-03-01T10:00:00+09:00\n"
           f"{b},,120,\n{c},,,\n")
    status, body = await upload(bot, "members", csv)
    assert (status, body) == (200, {"imported": 3, "skipped": 0, "errors": []})
    assert (await member(bot, a))["points"] == 500
    assert (await member(bot, b))["points"] == 120
    assert (await member(bot, c))["points"] == 0
    program = bot.services.program
    assert await program.links.user_of("cust-1") == a
    assert await program.links.customer_of(a) == "cust-1"
    record = await program.members.record(a)
    assert record["first_seen_via"] == "import"
    assert int(record["first_seen_at"]) == 1709254800000  # 2024-03-01 10:00 JST
    [entry] = await program.points_ledger.entries(a)
    assert (entry["op"], entry["delta"], entry["kind"]) == ("import", 500, "import")
    entries = [fields for _, fields in await bot.services.redis.xrange(rkeys.AUDIT)]
    assert [(e[b"what"], e[b"imported"], e[b"errors"]) for e in entries] == [(b"import_members", b"3", b"0")]
    before = await state(bot, a, b, c)
    status, body = await upload(bot, "members", csv)
    assert (status, body) == (200, {"imported": 0, "skipped": 3, "errors": []})
    assert await state(bot, a, b, c) == before


async def test_bad_rows_are_reported_by_line_and_code_and_store_nothing(bot: Bot) -> None:
    good, dup, taken = new_user_id(), new_user_id(), new_user_id()
    bad = [new_user_id() for _ in range(8)]
    lines = [
        "user_id,customer_id,points,joined_at",
        f"{good},c-good,10,2025-01-02",           # 2: fine
        "not-a-user,,,",                           # 3
        f"{bad[0]},,-5,",                          # 4
        f"{bad[1]},,12.5,",                        # 5
        f"{bad[2]},,,yesterday",                   # 6
        f"{bad[3]},has space,,",                   # 7
        f"{bad[4]},,",                             # 8: a column short
        f"{good},,10,",                            # 9: the user id again
        "",                                        # 10: blank, passed over
        f"{bad[5]},c-good,,",                      # 11: the customer id again
        f"{bad[6]},,,2999-01-01",                  # 12: in the future
        f"{bad[7]},\"unclosed,,",                  # 13
        f"{dup},,{'9' * 20},",                     # 14
    ]
    status, body = await upload(bot, "members", "\n".join(lines) + "\n")
    assert status == 200, body
    assert body == {"imported": 1, "skipped": 0, "errors": [
        {"line": 3, "code": "BAD_USER_ID"}, {"line": 4, "code": "BAD_POINTS"}, {"line": 5, "code": "BAD_POINTS"},
        {"line": 6, "code": "BAD_JOINED_AT"}, {"line": 7, "code": "BAD_CUSTOMER_ID"},
        {"line": 8, "code": "WRONG_COLUMNS"}, {"line": 9, "code": "DUPLICATE_USER_ID"},
        {"line": 11, "code": "DUPLICATE_CUSTOMER_ID"}, {"line": 12, "code": "BAD_JOINED_AT"},
        {"line": 13, "code": "WRONG_COLUMNS"}, {"line": 14, "code": "BAD_POINTS"}]}
    for uid in [*bad, dup]:
        assert not await bot.services.redis.exists(rkeys.member(uid)), uid
    # a corrected file: another opening balance is refused (an adjustment corrects it), a customer linked to
    # someone else is not moved; both rows store nothing, the member they name keeps what they had
    before = await state(bot, good)
    status, body = await upload(bot, "members", f"user_id,points\n{good},99\n")
    assert body == {"imported": 0, "skipped": 0, "errors": [{"line": 2, "code": "POINTS_DIFFER"}]}
    status, body = await upload(bot, "members", f"user_id,customer_id\n{taken},c-good\n{good},c-other\n")
    assert body == {"imported": 0, "skipped": 0, "errors": [{"line": 2, "code": "CUSTOMER_LINKED_ELSEWHERE"},
                                                            {"line": 3, "code": "MEMBER_LINKED_ELSEWHERE"}]}
    assert not await bot.services.redis.exists(rkeys.member(taken))
    assert await bot.services.program.links.user_of("c-other") is None
    assert await state(bot, good) == before


async def test_optional_columns_may_be_left_out_and_bom_and_crlf_are_read(bot: Bot) -> None:
    a, b = new_user_id(), new_user_id()
    status, body = await upload(bot, "members", f"\ufeffpoints,user_id\r\n7,{a}\r\n0,{b}")
    assert (status, body) == (200, {"imported": 2, "skipped": 0, "errors": []})
    assert (await member(bot, a))["points"] == 7
    assert await bot.services.program.points_ledger.entries(b) == []  # no opening balance of nothing


async def test_the_header_the_content_type_and_the_token_are_checked_first(bot: Bot) -> None:
    uid = new_user_id()
    for csv, code in [(f"user_id,email\n{uid},a@b\n", "UNKNOWN_COLUMN"), ("points\n5\n", "MISSING_COLUMN"),
                      ("", "EMPTY_FILE"), (f"user_id,user_id\n{uid},{uid}\n", "DUPLICATE_COLUMN")]:
        status, body = await upload(bot, "members", csv)
        assert status == 400 and body["error"]["code"] == code, (csv, body)  # type: ignore[index]
    status, body = await upload(bot, "orders", "order_id,amount,occurred_at\no-1,100,2025-01-01\n")
    assert status == 400 and body["error"]["code"] == "MISSING_COLUMN"  # type: ignore[index]
    status, body = await upload(bot, "members", f"user_id\n{uid}\n", content_type="application/json")
    assert status == 415 and body["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"  # type: ignore[index]
    status, body = await upload(bot, "members", f"user_id\n{uid}\n", token=None)
    assert status == 401
    status, body = await upload(bot, "members", f"user_id\n{uid}\n", token="wrong")
    assert status == 403
    assert not await bot.services.redis.exists(rkeys.member(uid))


async def test_an_imported_member_is_not_new_their_code_message_is_refused_and_they_get_no_signup_points(
        bot: Bot) -> None:
    platform = bot.platform
    referrer, friend = new_user_id(), new_user_id()
    code = await invite_code(bot, referrer)
    assert (await upload(bot, "members", f"user_id,points\n{friend},300\n"))[0] == 200
    said = await converse(platform, friend, platform.follow(friend))  # their first follow of this account
    assert "おかえりなさい" in text_of(said)
    said = await converse(platform, friend, platform.text(friend, code))
    assert "新しく友だち追加してくれた方が対象" in text_of(said)  # EXISTING_MEMBER
    assert (await member(bot, friend))["points"] == 300  # the opening balance, no signup points
    await bot.idle()
    assert (await member(bot, referrer))["referrals"]["pending"] == 0


# ---- orders --------------------------------------------------------------------------------------------------
async def test_a_member_with_an_imported_past_order_is_refused_as_an_existing_customer(bot: Bot) -> None:
    platform = bot.platform
    referrer, friend = new_user_id(), new_user_id()
    code = await invite_code(bot, referrer)
    await converse(platform, friend, platform.follow(friend))  # a new friend of the account...
    points = (await member(bot, friend))["points"]
    status, body = await upload(bot, "orders", f"order_id,user_id,amount,occurred_at\npast-1,{friend},3000,"
                                               "2025-06-01T12:00:00+09:00\n")
    assert (status, body) == (200, {"imported": 1, "skipped": 0, "errors": []})
    said = await converse(platform, friend, platform.text(friend, code))  # ...who bought from the shop before
    assert "初めてご利用の方が対象" in text_of(said)  # EXISTING_CUSTOMER
    assert (await member(bot, friend))["points"] == points  # the past order earned nothing


async def test_imported_orders_move_tiers_by_spend_and_award_no_points(bot_with: BotWith, tmp_path: Path) -> None:
    bot = await bot_with(rewards_config=variant(tmp_path, tiers__basis='"yen"'))
    a, b = new_user_id(), new_user_id()
    assert (await upload(bot, "members", f"user_id,customer_id\n{b},shop-b\n"))[0] == 200
    csv = ("order_id,user_id,customer_id,amount,occurred_at\n"
           f"h-1,{a},,4000,2025-05-01\nh-2,{a},,3000,2025-06-01T09:00:00Z\nh-3,,shop-b,1500,2025-07-01\n"
           "h-4,,nobody,100,2025-07-01\n"         # 5: a customer no member is linked to
           f"h-5,{a},shop-b,100,2025-07-01\n"     # 6: both buyers
           f"h-1,{b},,100,2025-07-01\n"           # 7: the order id again
           f"h-6,{a},,1e3,2025-07-01\n"           # 8
           f"h-7,{a},,100,\n")                    # 9
    status, body = await upload(bot, "orders", csv)
    assert (status, body) == (200, {"imported": 3, "skipped": 0, "errors": [
        {"line": 5, "code": "UNKNOWN_CUSTOMER"}, {"line": 6, "code": "BAD_BUYER"},
        {"line": 7, "code": "DUPLICATE_ORDER_ID"}, {"line": 8, "code": "BAD_AMOUNT"},
        {"line": 9, "code": "BAD_OCCURRED_AT"}]})
    view = await member(bot, a)
    assert (view["points"], view["tier"]) == (0, "gold")  # 7,000 yen: over gold's 5,000
    record = await bot.services.program.members.record(a)
    assert (record["first_order"], record["orders"], record["spent"]) == ("h-1", "2", "7000")
    assert record["first_seen_via"] == "import"
    assert (await member(bot, b))["points"] == 0
    assert (await bot.services.program.members.record(b))["spent"] == "1500"
    before = await state(bot, a, b)
    status, body = await upload(bot, "orders", csv)
    assert body["imported"] == 0 and body["skipped"] == 3  # type: ignore[index]
    assert await state(bot, a, b) == before
    # an order id already reported for another member is refused
    status, body = await upload(bot, "orders", f"order_id,user_id,amount,occurred_at\nh-1,{b},5,2025-01-01\n")
    assert body == {"imported": 0, "skipped": 0, "errors": [{"line": 2, "code": "ORDER_CONFLICT"}]}


# ---- a long file ---------------------------------------------------------------------------------------------
async def test_a_long_file_becomes_a_job_with_progress(bot: Bot) -> None:
    uids = [new_user_id() for _ in range(3_000)]
    rows = [f"{uid},{i % 50}" for i, uid in enumerate(uids)]
    rows[1_500] = "bad,1"  # line 1,502
    status, body = await upload(bot, "members", "user_id,points\n" + "\n".join(rows) + "\n")
    assert status == 202, body
    import_id = body["id"]  # type: ignore[index]
    for _ in range(600):
        status, job = await bot.admin("GET", f"/api/v1/imports/{import_id}")
        assert status == 200, job
        if job["status"] != "running":  # type: ignore[index]
            break
        await asyncio.sleep(0.05)
    assert job == {"id": import_id, "kind": "members", "status": "done", "lines_read": 3_001, "imported": 2_999,
                   "skipped": 0, "errors": [{"line": 1_502, "code": "BAD_USER_ID"}], "errors_total": 1,
                   "created_at": job["created_at"], "finished_at": job["finished_at"]}  # type: ignore[index]
    assert (await member(bot, uids[49]))["points"] == 49
    status, missing = await bot.admin("GET", "/api/v1/imports/" + "0" * 32)
    assert status == 404 and missing["error"]["code"] == "UNKNOWN_IMPORT"  # type: ignore[index]


async def test_an_imported_member_opening_an_invite_on_the_liff_page_is_refused_as_an_existing_member(
        bot_with: BotWith) -> None:
    from linesim.platform import LIFF_ID, LOGIN_CHANNEL_ID
    bot = await bot_with(liff_id=LIFF_ID, line_login_channel_id=LOGIN_CHANNEL_ID)
    referrer, friend = new_user_id(), new_user_id()
    code = await invite_code(bot, referrer)
    assert (await upload(bot, "members", f"user_id\n{friend}\n"))[0] == 200
    async with bot.http.post(bot.url + "/liff/v1/attribution",
                             json={"id_token": bot.platform.id_token(friend), "code": code}) as r:
        answer = await r.json()
    assert r.status == 200 and (answer["status"], answer["reason"]) == ("refused", "EXISTING_MEMBER"), answer
    assert not await bot.services.redis.exists(rkeys.referral(friend))


# ---- the stream ----------------------------------------------------------------------------------------------
async def test_lines_are_split_the_same_wherever_the_chunks_break_and_a_long_line_is_cut() -> None:
    from bot.web.api.imports import MAX_LINE_BYTES, split_lines

    body = b"a,b\r\n1,2\n\n" + b"x" * (MAX_LINE_BYTES + 10) + b"\r\nlast"
    expected = [b"a,b", b"1,2", b"", b"x" * (MAX_LINE_BYTES + 1), b"last"]

    async def chunks(size: int):  # type: ignore[no-untyped-def]
        for i in range(0, len(body), size):
            yield body[i:i + size]

    for size in (1, 2, 3, 7, 64, 4096, 5000, len(body)):
        assert [line async for line in split_lines(chunks(size))] == expected, size


async def test_a_too_long_or_undecodable_row_is_reported(bot: Bot) -> None:
    uid = new_user_id()
    body = (f"user_id,points\n{uid},{'1' * 5000}\n".encode() + b"\xff\xfe,1\n" + f"{uid},3\n".encode())
    status, answer = await upload(bot, "members", body)
    assert (status, answer) == (200, {"imported": 1, "skipped": 0, "errors": [
        {"line": 2, "code": "LINE_TOO_LONG"}, {"line": 3, "code": "BAD_ENCODING"}]})
    assert (await member(bot, uid))["points"] == 3


async def test_a_job_cut_short_reads_interrupted_and_the_same_file_again_finishes_it(bot: Bot) -> None:
    from bot.web.api.imports import JOBS

    uids = [new_user_id() for _ in range(3_000)]
    csv = "user_id,points\n" + "".join(f"{uid},{i % 7 + 1}\n" for i, uid in enumerate(uids))
    status, body = await upload(bot, "members", csv)
    assert status == 202, body
    import_id = body["id"]  # type: ignore[index]
    for _ in range(1_000):  # the first batch written, then the process "dies" (its task is cancelled)
        _, job = await bot.admin("GET", f"/api/v1/imports/{import_id}")
        if job["lines_read"] > 1:  # type: ignore[index]
            break
        await asyncio.sleep(0.01)
    [task] = bot.app[JOBS].tasks
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    _, job = await bot.admin("GET", f"/api/v1/imports/{import_id}")
    assert job["status"] == "interrupted" and 1 < job["lines_read"] < 3_001, job  # type: ignore[index]
    done_before = job["imported"]  # type: ignore[index]
    status, body = await upload(bot, "members", csv)
    assert status == 202
    for _ in range(1_000):
        _, job = await bot.admin("GET", f"/api/v1/imports/{body['id']}")  # type: ignore[index]
        if job["status"] != "running":  # type: ignore[index]
            break
        await asyncio.sleep(0.05)
    assert job["status"] == "done" and job["errors_total"] == 0, job  # type: ignore[index]
    assert job["imported"] + job["skipped"] == 3_000 and job["skipped"] >= done_before  # type: ignore[index]
    for i in (0, 1_499, 2_999):
        assert (await member(bot, uids[i]))["points"] == i % 7 + 1
        assert len(await bot.services.program.points_ledger.entries(uids[i])) == 1


async def test_an_imported_members_first_follow_reads_their_line_language(bot: Bot) -> None:
    platform = bot.platform
    uid = new_user_id()
    assert (await upload(bot, "members", f"user_id\n{uid}\n"))[0] == 200
    said = await converse(platform, uid, platform.follow(uid, language="en"))
    assert "Welcome back" in text_of(said)
    assert await bot.services.program.language(uid) == "en"


async def test_the_first_order_is_the_earliest_past_order_whatever_the_rows_order(bot_with: BotWith) -> None:
    """Rows are imported side by side: a member's first order is the earliest by occurred_at, not the row that
    happened to be written first (nor the first row of the file)."""
    bot = await bot_with()
    a = new_user_id()
    csv = "order_id,user_id,amount,occurred_at\n" + "".join(
        f"late-{n},{a},100,2025-0{9 - n}-01\n" for n in range(5)) + f"early,{a},100,2024-12-31\n"
    assert (await upload(bot, "orders", csv))[0] == 200
    record = await bot.services.program.members.record(a)
    assert (record["first_order"], record["orders"]) == ("early", "6")
