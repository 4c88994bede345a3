"""The staff dashboard's doors at the HTTP level: sign-in, sessions, roles and CSRF.

REFUSALS is the table of every dashboard POST with the least role it needs: each is tried without a
session, without the CSRF token (and with a wrong one), and with every role below, and must be refused with
nothing changed in Redis (sessions and sign-in counters aside). Other pages add their rows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest
from aiohttp import ClientSession
from yarl import URL

from bot.web.dashboard.accounts import ROLES, StaffAccounts
from bot.web.dashboard.lockout import PER_ACCOUNT, PER_ADDRESS
from rewards import keys
from tests.support.dashboard import (
    DASH_PUBLIC,
    PASSWORD,
    StaffClient,
    email_of,
    member_with_coupon,
    start_dashboard,
)
from tests.support.harness import Bot, BotWith
from tests.support.rules_helpers import Clock

FORM_OP = "a-form-token-of-the-page-1234"


@dataclass(frozen=True)
class Post:
    path: str  # {member} and {coupon}: a member of the fixture and their unused coupon
    form: dict[str, str] = field(default_factory=dict)
    needs: str = "staff"  # the least role that may


BROADCAST = {"text": "週末はポイント2倍！", "audience": "segments", "segment": "language:ja", "combine": "all",
             "when": "now", "draft": "0123456789abcdef0123456789abcdef"}
REFUSALS = [
    Post("/admin/members/{member}", {"points": "50", "reason": "goodwill", "op": FORM_OP}, "staff"),
    Post("/admin/members/{member}/coupons/{coupon}", {"op": FORM_OP}, "staff"),
    Post("/admin/accounts", {"email": "new@example.test", "role": "viewer", "password": PASSWORD}, "owner"),
    Post("/admin/accounts/remove", {"email": email_of("staff")}, "owner"),
    Post("/admin/accounts/reset", {"email": email_of("staff"), "password": "another password 1"}, "owner"),
    Post("/admin/logout", {}, "viewer"),
    # dash-ops: the review queue's decisions and the catalog's stock
    Post("/admin/referrals/{member}/approve", {"reason": "same card"}, "staff"),
    Post("/admin/referrals/{member}/void", {"reason": "same card"}, "staff"),
    Post("/admin/rewards/coffee/stock", {"add": "5", "seen_limit": "500"}, "owner"),
    # the Broadcasts page (bot/web/dashboard/broadcasts.py): a confirmed send, the estimate, everyone (an owner's),
    # a job's buttons
    Post("/admin/broadcasts", {**BROADCAST, "confirmed": "yes"}, "staff"),
    Post("/admin/broadcasts/estimate", BROADCAST, "staff"),
    Post("/admin/broadcasts", {**BROADCAST, "audience": "everyone", "confirmed": "yes"}, "owner"),
    Post("/admin/broadcasts/estimate", {**BROADCAST, "audience": "everyone"}, "owner"),
    Post("/admin/broadcasts/" + "0" * 32 + "/cancel", {}, "staff"),
    Post("/admin/broadcasts/" + "0" * 32 + "/resume", {}, "staff"),
]

VOLATILE = (f"{keys.PREFIX}:dash:session:", f"{keys.PREFIX}:dash:signin:")


async def snapshot(bot: Bot) -> dict[bytes, bytes]:
    """Every key's value (DUMP) but the sessions' and the sign-in counters': what a refusal must not change."""
    redis = bot.services.redis
    found = {}
    async for key in redis.scan_iter(count=1000):
        if not key.decode().startswith(VOLATILE):
            found[key] = await redis.dump(key)
    return found


@pytest.fixture
async def setting(bot_with: BotWith, staff_clients):
    """The bot (no worker: nothing in Redis moves by itself), a member with a coupon, a signed-in client per role."""
    bot = await start_dashboard(bot_with, run_worker=False)
    uid, token = await member_with_coupon(bot)
    clients = {role: await staff_clients(bot, role) for role in ROLES}
    return bot, uid, token, clients


async def test_every_post_refused_without_session_csrf_or_role(setting) -> None:
    bot, uid, token, clients = setting
    before = await snapshot(bot)
    async with ClientSession() as anonymous:
        for post in REFUSALS:
            path = post.path.format(member=uid, coupon=token)
            async with anonymous.post(bot.url + path, data={**post.form, "csrf": "x"},
                                      allow_redirects=False) as r:
                assert r.status == 401, (path, r.status)
    for post in REFUSALS:
        path = post.path.format(member=uid, coupon=token)
        allowed = ROLES[ROLES.index(post.needs):]
        for role in ROLES:
            client: StaffClient = clients[role]
            status, _, _ = await client.post(path, post.form, csrf=False)
            assert status == 403, (path, role, "no csrf")
            status, _, _ = await client.post(path, {**post.form, "csrf": client.csrf[:-2] + "xx"}, csrf=False)
            assert status == 403, (path, role, "wrong csrf")
            if role not in allowed:
                status, body, _ = await client.post(path, post.form)
                assert status == 403, (path, role)
    assert await snapshot(bot) == before, "a refused POST changed something"
    # and the rows do work for the roles they name (so the refusals above were not refusals of a bad form)
    owner = clients["owner"]
    status, _, location = await owner.post(f"/admin/members/{uid}", REFUSALS[0].form)
    assert status == 303 and location.startswith(f"/admin/members/{uid}?done=adjusted")
    status, _, location = await owner.post(f"/admin/members/{uid}", REFUSALS[0].form)  # the same form again
    assert status == 303 and "done=repeat" in location
    assert (await bot.services.program.member(uid)).points == 1050
    status, _, location = await clients["staff"].post(f"/admin/members/{uid}/coupons/{token}", {"op": FORM_OP})
    assert status == 303 and "done=coupon_used" in location


async def test_adjustments_staff_limit_owner_any_and_audit(setting) -> None:
    bot, uid, _, clients = setting
    limit = bot.services.program.rules.staff_adjust_limit
    staff, owner = clients["staff"], clients["owner"]
    status, page, _ = await staff.post(f"/admin/members/{uid}", {"points": str(limit + 1), "reason": "too much",
                                                                "op": "staff-form-token-00001"})
    assert status == 400 and f"±{limit:,}" in page
    for bad in ({"points": "0", "reason": "x"}, {"points": "1e3", "reason": "x"}, {"points": "5", "reason": " "},
                {"points": "５", "reason": "x"}):
        status, _, _ = await staff.post(f"/admin/members/{uid}", {**bad, "op": "staff-form-token-00002"})
        assert status == 400, bad
    assert (await staff.post(f"/admin/members/{uid}", {"points": f"-{limit}", "reason": "returned goods",
                                                      "op": "staff-form-token-00003"}))[0] == 303
    assert (await owner.post(f"/admin/members/{uid}", {"points": "+50000", "reason": "prize",
                                                      "op": "owner-form-token-0001"}))[0] == 303
    view = await bot.services.program.member(uid)
    assert view is not None and view.points == 1000 - limit + 50000
    status, page = await staff.get("/admin/audit?what=adjust_points&who=web:")
    assert status == 200 and page.count("web:") >= 2 and "returned goods" in page and "prize" in page
    _, api = await bot.admin("GET", "/api/v1/audit")
    mine = [e for e in api["entries"] if e["what"] == "adjust_points" and e["who"].startswith("web:")]
    assert {(e["who"], e["points"]) for e in mine} == {(f"web:{staff.email}", str(-limit)),
                                                       (f"web:{owner.email}", "50000")}
    status, page = await clients["viewer"].get(f"/admin/members/{uid}")
    assert status == 200 and 'name="points"' not in page and "returned goods" in page
    assert 'name="points"' in (await staff.get(f"/admin/members/{uid}"))[1]


async def test_sign_in_limits_same_answer_and_lockout(dash_bot: Bot, staff_clients) -> None:
    bot = dash_bot
    clock = Clock()
    bot.services.program.clock = clock
    owner: StaffClient = await staff_clients(bot, "owner", sign_in=False)
    stranger: StaffClient = await staff_clients(bot, "viewer", email="someone@example.test", sign_in=False)
    await StaffAccounts(bot.services.redis).remove("someone@example.test")  # an email with no account
    wrong = await owner.sign_in("wrong password!")
    unknown = await stranger.sign_in("wrong password!")
    assert wrong[0] == unknown[0] == 401
    def answer(page: str, email: str) -> str:  # the page without the email typed and the form's own token
        return re.sub(r'name="csrf" value="[^"]*"', "", page.replace(email, "E"))

    assert answer(wrong[1], owner.email) == answer(unknown[1], stranger.email), "the same answer"
    for _ in range(PER_ACCOUNT.failures - 2):
        assert (await owner.sign_in("wrong password!"))[0] == 401
    status, page, _ = await owner.sign_in("wrong password!")
    assert status == 429 and "ロック" in page
    status, page, _ = await owner.sign_in()  # the right password does not open a locked account
    assert status == 429
    clock.advance(minutes=PER_ACCOUNT.lock_ms / 60_000 + 1)
    assert (await owner.sign_in())[0] == 303
    # per address: many emails from one address
    assert (await owner.post("/admin/logout"))[0] == 303
    clock.advance(minutes=PER_ADDRESS.window_ms / 60_000 + 1)
    for i in range(PER_ADDRESS.failures - 1):
        assert (await stranger.sign_in("nope nope nope", email=f"guess{i}@example.test"))[0] == 401
    assert (await stranger.sign_in("nope nope nope", email="guess-last@example.test"))[0] == 429
    status, page, _ = await owner.sign_in(PASSWORD)
    assert status == 429, "the address is locked, whatever the account"


async def test_session_idles_out_and_ends_on_removal_or_reset(dash_bot: Bot, staff_clients) -> None:
    bot = dash_bot
    clock = Clock()
    bot.services.program.clock = clock
    viewer: StaffClient = await staff_clients(bot, "viewer")
    staff: StaffClient = await staff_clients(bot, "staff")
    idle = bot.services.settings.dashboard_idle_minutes
    clock.advance(minutes=idle - 1)
    assert (await viewer.get("/admin/"))[0] == 200  # used: the idle time starts again
    clock.advance(minutes=idle - 1)
    assert (await viewer.get("/admin/"))[0] == 200
    clock.advance(minutes=idle + 1)
    status, _ = await viewer.get("/admin/audit")
    assert status == 303
    status, page = await viewer.get("/admin/login?next=/admin/audit&expired=1")
    assert "操作がなかった" in page or "ログイン" in page
    # a reset password ends the staff member's session; so does a removal
    accounts = StaffAccounts(bot.services.redis)
    await accounts.reset_password(staff.email, "a brand new password")
    assert (await staff.get("/admin/"))[0] == 303
    assert (await staff.sign_in("a brand new password"))[0] == 303
    await accounts.remove(staff.email)
    assert (await staff.get("/admin/"))[0] == 303
    assert (await staff.sign_in("a brand new password"))[0] == 401


async def test_sign_in_pages_and_sign_out(dash_bot: Bot, staff_clients) -> None:
    bot = dash_bot
    async with ClientSession() as anonymous:
        async with anonymous.get(bot.url + "/admin/members?q=x", allow_redirects=False) as r:
            location = URL(r.headers["Location"])
            assert r.status == 303 and location.path == "/admin/login" and location.query["next"] == "/admin/members?q=x"
        async with anonymous.get(bot.url + "/admin/login") as r:
            assert r.status == 200
            csp = r.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "http" not in csp
            assert r.headers["X-Content-Type-Options"] == "nosniff"
        # another site's form cannot sign a browser in: the sign-in form's own token is needed
        async with anonymous.post(bot.url + "/admin/login", data={"email": "a@b.c", "password": "x" * 12},
                                  allow_redirects=False) as r:
            assert r.status == 403
    owner: StaffClient = await staff_clients(bot, "owner")
    status, page = await owner.get("/admin/")
    assert status == 200 and "owner@example.test" in page and owner.csrf
    cookie = next(c for c in owner.http.cookie_jar if c.key == "shokai_admin")
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]
    # after sign-in, only a dashboard path: never another site
    assert (await owner.get("/admin/login?next=//evil.example/x"))[0] == 303
    # sign out: without the token refused; with it the session ends
    assert (await owner.post("/admin/logout", csrf=False))[0] == 403
    assert (await owner.get("/admin/"))[0] == 200
    status, _, location = await owner.post("/admin/logout")
    assert status == 303 and location == "/admin/login"
    assert (await owner.get("/admin/"))[0] == 303


async def test_secure_cookie_on_https(bot_with: BotWith, staff_clients) -> None:
    bot = await start_dashboard(bot_with, run_worker=False, public_base_url="https://shop.example.test")
    client = await staff_clients(bot, "viewer", sign_in=False)
    # a client on http would drop a Secure cookie: read the Set-Cookie header itself
    _, page = await client.get("/admin/login")
    token = page.split('name="csrf" value="')[1].split('"')[0]
    async with client.http.post(bot.url + "/admin/login", allow_redirects=False,
                                data={"email": client.email, "password": PASSWORD, "csrf": token}) as r:
        assert r.status == 303
        set_cookie = [v for v in r.headers.getall("Set-Cookie") if v.startswith("shokai_admin=")][0]
    assert "Secure" in set_cookie and "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    assert DASH_PUBLIC.startswith("http://")


async def test_every_page_for_each_role(setting) -> None:
    bot, uid, _, clients = setting
    pages = {"/admin/": ROLES, "/admin/members?q=x": ROLES, f"/admin/members/{uid}": ROLES,
             f"/admin/members/{uid}?page=2&lang=en": ROLES, "/admin/audit?what=adjust_points&since=2020-01-01": ROLES,
             "/admin/accounts": ("owner",),
             # dash-ops: the overview's periods, the review queue and its tabs, the catalog and the rules
             "/admin/?days=7": ROLES, "/admin/?days=90": ROLES, "/admin/referrals": ROLES,
             "/admin/referrals?status=voided": ROLES, "/admin/rewards": ROLES, "/admin/rewards/rules": ROLES}
    for path, allowed in pages.items():
        for role in ROLES:
            status, page = await clients[role].get(path)
            assert status == (200 if role in allowed else 403), (path, role, status)
            if status == 200:  # the nav offers only what the role may open
                assert ('href="/admin/accounts"' in page) == (role == "owner"), (path, role)
    # unknown members and malformed ids: the dashboard's 404 page, for every role
    for role in ROLES:
        assert (await clients[role].get("/admin/members/U" + "0" * 32))[0] == 404
        assert (await clients[role].get("/admin/members/not-an-id"))[0] == 404
        assert (await clients[role].get("/admin/referrals/U" + "0" * 32))[0] == 404  # never referred
        assert (await clients[role].get("/admin/referrals/not-an-id"))[0] == 404


async def test_users_command(clean_redis: str, capsys) -> None:
    """`python -m bot users …` (in-process, on the test Redis): the password from stdin, one line."""
    import io

    from bot.__main__ import _parser
    from bot.config import CommandLine, Settings
    from bot.infra.redis_conn import connect
    from bot.web.dashboard import cli

    settings = Settings(channel_secret="s", channel_access_token="t", public_base_url="http://x.test",
                        redis_url=clean_redis)

    async def users(*argv: str, stdin: str = "") -> int:
        return await cli.run(settings, _parser(CommandLine.from_env({})).parse_args(["users", *argv]),
                             stdin=io.StringIO(stdin))

    assert await users("add", "Boss@Example.TEST", "--role", "owner", stdin="a long passphrase\n") == 0
    assert await users("add", "boss@example.test", "--role", "staff", stdin="another passphrase\n") == 1
    assert await users("add", "short@example.test", "--role", "viewer", stdin="short\n") == 1
    assert await users("list") == 0
    assert "boss@example.test\towner" in capsys.readouterr().out
    redis = connect(clean_redis, False)
    accounts = StaffAccounts(redis)
    assert await accounts.verify("boss@example.test", "a long passphrase") is not None
    assert await users("reset-password", "boss@example.test", stdin="the new passphrase\n") == 0
    assert await accounts.verify("boss@example.test", "a long passphrase") is None
    assert await accounts.verify("BOSS@example.test", "the new passphrase") is not None
    assert await users("remove", "boss@example.test") == 0
    assert await users("remove", "boss@example.test") == 1
    assert await accounts.list() == []
    await redis.aclose()
