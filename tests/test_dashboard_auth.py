"""The staff dashboard's doors at the HTTP level: sign-in, sessions, roles and CSRF.

REFUSALS is the table of every dashboard POST: each is tried without a session, without the CSRF token and
with a role below the one it needs, and must be refused with nothing changed. Other pages add their rows.
"""
from __future__ import annotations

from aiohttp import ClientSession

from tests.support.dashboard import DASH_PUBLIC, PASSWORD, StaffClient, start_dashboard
from tests.support.harness import Bot, BotWith


async def test_sign_in_pages_and_sign_out(dash_bot: Bot, staff_clients) -> None:
    bot = dash_bot
    async with ClientSession() as anonymous:
        async with anonymous.get(bot.url + "/admin/?x=1", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"].startswith("/admin/login?next=")
        async with anonymous.get(bot.url + "/admin/login") as r:
            assert r.status == 200
            csp = r.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "http" not in csp
            assert r.headers["X-Content-Type-Options"] == "nosniff"
    owner: StaffClient = await staff_clients(bot, "owner")
    status, page = await owner.get("/admin/")
    assert status == 200 and "owner@example.test" in page and owner.csrf
    cookie = next(c for c in owner.http.cookie_jar if c.key == "shokai_admin")
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]
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
