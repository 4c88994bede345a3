"""Sign in (/admin/login) and out (/admin/logout).

A wrong password and an unknown email get the same answer, after the same Argon2 work. Failures are
limited per account and per address (lockout.py); a locked sign-in is refused without looking at the
password, with the time to try again. The sign-in form has its own CSRF token (a cookie it must match),
so no other site can sign a browser in to an account of its choosing.
"""
from __future__ import annotations

import hmac
import logging
import re
import secrets

from aiohttp import web

from bot.web.dashboard import auth
from bot.web.dashboard.render import render, shop_time
from bot.web.dashboard.sessions import COOKIE, COOKIE_PATH
from bot.web.limits import client_address

log = logging.getLogger(__name__)

LOGIN_CSRF_COOKIE = "shokai_admin_login"
HOME = "/admin/"
_SAFE_NEXT = re.compile(r"/admin(/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?")

NAV: list[tuple[str, str, str]] = []  # sign-in is no nav entry


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: a path of the dashboard only (never another site, never //host)."""
    if raw and _SAFE_NEXT.fullmatch(raw) and "//" not in raw and "\\" not in raw and not raw.startswith(
            "/admin/login"):
        return raw
    return HOME


def _form(request: web.Request, *, status: int = 200, error: str | None = None, email: str = "",
          next_path: str = HOME, until_ms: int = 0) -> web.Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = render(request, None, "signin.html", status=status, error=error, email=email, next=next_path,
                      login_csrf=token, until=shop_time(request, until_ms) if until_ms else "")
    # a nonce that guards the form, not a credential: not Secure, so it also works on http://localhost
    response.set_cookie(LOGIN_CSRF_COOKIE, token, path="/admin/login", httponly=True, samesite="Strict")
    if until_ms:
        seconds = (until_ms - auth.services(request).program.now_ms()) // 1000
        response.headers["Retry-After"] = str(max(1, seconds))
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    next_path = safe_next(request.query.get("next"))
    if await auth.current(request) is not None:
        raise web.HTTPSeeOther(next_path)
    expired = request.query.get("expired") == "1"
    return _form(request, next_path=next_path, error="dash_signin_expired" if expired else None)


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    email = str(form.get("email", "")).strip().lower()[:254]
    password = str(form.get("password", ""))
    next_path = safe_next(str(form.get("next", "")))
    sent, expected = str(form.get("csrf", "")), request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        log.warning("dashboard sign-in without its form's token from %s", request.remote)
        return _form(request, status=403, error="dash_signin_form_stale", email=email, next_path=next_path)
    address = client_address(request, auth.services(request).settings.trusted_proxy_hops)
    lockout = auth.lockout(request)
    until = await lockout.locked_until(email, address)
    if until:
        log.warning("dashboard sign-in refused (locked until %s) for %r from %s", until, email, address)
        return _locked(request, email, next_path, until)
    account = await auth.accounts(request).verify(email, password)
    if account is None:
        until = await lockout.failed(email, address)
        log.warning("dashboard sign-in failed for %r from %s", email, address)
        if until:
            return _locked(request, email, next_path, until)
        return _form(request, status=401, error="dash_signin_wrong", email=email, next_path=next_path)
    await lockout.succeeded(email)
    sessions = auth.sessions(request)
    earlier = request.cookies.get(COOKIE)
    if earlier:  # a new token at every sign-in: a token planted or seen before is worth nothing after it
        await sessions.end(earlier)
    session = await sessions.create(account.email, account.generation)
    log.info("dashboard: %s (%s) signed in from %s", account.email, account.role, address)
    response = web.HTTPSeeOther(next_path)
    sessions.set_cookie(response, session)
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/admin/login")
    raise response


def _locked(request: web.Request, email: str, next_path: str, until_ms: int) -> web.Response:
    return _form(request, status=429, error="dash_signin_locked", email=email, next_path=next_path,
                 until_ms=until_ms)


@auth.requires("read")
async def logout(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    await auth.sessions(request).end(request[auth.SESSION].token)
    log.info("dashboard: %s signed out", staff.email)
    response = web.HTTPSeeOther("/admin/login")
    auth.sessions(request).clear_cookie(response)
    raise response


def setup(app: web.Application, services_key: web.AppKey) -> None:
    app.router.add_get("/admin/login", login_page)
    app.router.add_post("/admin/login", login)
    app.router.add_post("/admin/logout", logout)
    assert COOKIE_PATH == "/admin"
