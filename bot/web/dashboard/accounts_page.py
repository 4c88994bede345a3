"""/admin/accounts (owners only): the staff accounts; add one, remove one, set a new password.

Each change is audited under the owner's own identity ("web:EMAIL"). The last owner cannot be removed (no
one could manage accounts afterwards); a removed account's sessions end at their next request, and so do
those of an account whose password is reset (sessions.py).
"""
from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from bot.web.dashboard import auth
from bot.web.dashboard.accounts import ROLES, AccountError, normalise_email
from bot.web.dashboard.render import render

log = logging.getLogger(__name__)

NAV = [("/admin/accounts", "dash_nav_accounts", "manage_accounts")]


async def _page(request: web.Request, staff: auth.Staff, *, status: int = 200, error: str | None = None,
                entered: dict[str, str] | None = None) -> web.Response:
    return render(request, staff, "accounts.html", status=status, accounts=await auth.accounts(request).list(),
                  roles=ROLES, error=error, entered=entered or {}, done=request.query.get("done"))


@auth.requires("manage_accounts")
async def accounts_page(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    return await _page(request, staff)


async def _audit(request: web.Request, staff: auth.Staff, what: str, **details: Any) -> None:
    await auth.services(request).program.audit(staff.who, what, "", **details)


@auth.requires("manage_accounts")
async def add(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    form = await request.post()
    email, role = str(form.get("email", ""))[:254], str(form.get("role", ""))
    try:
        account = await auth.accounts(request).add(email, role, str(form.get("password", "")))
    except AccountError as refused:
        return await _page(request, staff, status=400 if refused.code != "EXISTS" else 409,
                           error=f"dash_account_{refused.code}", entered={"email": email, "role": role})
    await _audit(request, staff, "account_add", email=account.email, role=account.role)
    log.info("dashboard: %s added the account %s (%s)", staff.email, account.email, account.role)
    raise web.HTTPSeeOther("/admin/accounts?done=added")


@auth.requires("manage_accounts")
async def remove(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    form = await request.post()
    accounts = auth.accounts(request)
    email = normalise_email(str(form.get("email", "")))
    target = await accounts.get(email)
    if target is None:
        return await _page(request, staff, status=404, error="dash_account_UNKNOWN")
    owners = [a for a in await accounts.list() if a.role == "owner"]
    if target.role == "owner" and len(owners) <= 1:
        return await _page(request, staff, status=409, error="dash_account_LAST_OWNER")
    await accounts.remove(email)
    await _audit(request, staff, "account_remove", email=email, role=target.role)
    log.info("dashboard: %s removed the account %s", staff.email, email)
    if email == staff.email:
        raise web.HTTPSeeOther("/admin/login")
    raise web.HTTPSeeOther("/admin/accounts?done=removed")


@auth.requires("manage_accounts")
async def reset(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    form = await request.post()
    email = normalise_email(str(form.get("email", "")))
    try:
        await auth.accounts(request).reset_password(email, str(form.get("password", "")))
    except AccountError as refused:
        return await _page(request, staff, status=404 if refused.code == "UNKNOWN" else 400,
                           error=f"dash_account_{refused.code}")
    await _audit(request, staff, "account_reset_password", email=email)
    log.info("dashboard: %s set a new password for %s", staff.email, email)
    if email == staff.email:  # their own sessions ended with it, this one too
        raise web.HTTPSeeOther("/admin/login")
    raise web.HTTPSeeOther("/admin/accounts?done=reset")


def setup(app: web.Application, services_key: web.AppKey) -> None:
    app.router.add_get("/admin/accounts", accounts_page)
    app.router.add_post("/admin/accounts", add)
    app.router.add_post("/admin/accounts/remove", remove)
    app.router.add_post("/admin/accounts/reset", reset)
