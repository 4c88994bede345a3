"""Who may do what on the dashboard, and the one decorator every page handler goes through.

    @requires("adjust_points")
    async def adjust(request: web.Request, staff: Staff) -> web.StreamResponse: ...

No session: a GET is sent to the sign-in page (and back afterwards), anything else answered 401. A role
without the permission: 403. A POST/PUT/PATCH/DELETE must carry the session's CSRF token (form field `csrf`,
or header X-CSRF-Token for fetch calls), else 403. Refused requests change nothing: the handler never runs.
"""
from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from bot.services import Services
from bot.web.dashboard.accounts import ROLES, StaffAccounts
from bot.web.dashboard.lockout import Lockout
from bot.web.dashboard.sessions import COOKIE, Session, Sessions

log = logging.getLogger(__name__)

__all__ = ["ROLES", "ALLOWED", "Staff", "requires", "services", "accounts", "sessions", "lockout"]

_EVERYONE = frozenset(ROLES)
_STAFF = frozenset({"staff", "owner"})
_OWNER = frozenset({"owner"})
ALLOWED: dict[str, frozenset[str]] = {
    "read": _EVERYONE,
    "adjust_points": _STAFF,
    "redeem_coupon": _STAFF,
    "decide_review": _STAFF,
    "broadcast": _STAFF,
    "broadcast_everyone": _OWNER,
    "edit_stock": _OWNER,
    "manage_accounts": _OWNER,
}
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# set by dashboard.setup(): which app key holds the Services (the app's own SERVICES)
SERVICES_KEY: web.AppKey[Any] = web.AppKey("dashboard_services_key", object)
# request[SESSION] / request[STAFF]: the request's session and staff member, once requires() let it through
SESSION = web.RequestKey("dashboard_session", Session)
STAFF: web.RequestKey[Staff]


@dataclass(frozen=True)
class Staff:
    email: str
    role: str

    @property
    def who(self) -> str:
        """The audit log's `who` for this person's actions."""
        return "web:" + self.email

    def may(self, permission: str) -> bool:
        return self.role in ALLOWED[permission]


STAFF = web.RequestKey("dashboard_staff", Staff)


def services(request: web.Request) -> Services:
    return request.app[request.app[SERVICES_KEY]]  # type: ignore[no-any-return]


def accounts(request: web.Request) -> StaffAccounts:
    s = services(request)
    return StaffAccounts(s.redis, s.program.now_ms)


def sessions(request: web.Request) -> Sessions:
    s = services(request)
    return Sessions(s.redis, s.program.now_ms, s.settings.dashboard_idle_minutes * 60_000,
                    secure=s.settings.public_base_url.startswith("https://"))


def lockout(request: web.Request) -> Lockout:
    s = services(request)
    return Lockout(s.redis, s.program.now_ms)


async def current(request: web.Request) -> tuple[Session, Staff] | None:
    """The request's live session and its staff member; None when there is none, it idled out, or its
    account was removed or its password reset since."""
    session = await sessions(request).get(request.cookies.get(COOKIE))
    if session is None:
        return None
    account = await accounts(request).get(session.email)
    if account is None or account.generation != session.generation:
        await sessions(request).end(session.token)
        return None
    return session, Staff(account.email, account.role)


def csrf_ok(request: web.Request, session: Session, form: Any) -> bool:
    sent = request.headers.get("X-CSRF-Token") or (form.get("csrf") if form is not None else None) or ""
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), session.csrf.encode())


Handler = Callable[[web.Request, Staff], Awaitable[web.StreamResponse]]


def requires(permission: str) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    if permission not in ALLOWED:
        raise ValueError(f"unknown permission {permission!r}")

    def decorate(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            from bot.web.dashboard.render import refusal

            found = await current(request)
            if found is None:
                if request.method in ("GET", "HEAD"):
                    # a cookie that names no live session: it idled out or was revoked, and the page says so
                    expired = "&expired=1" if request.cookies.get(COOKIE) else ""
                    raise web.HTTPSeeOther(f"/admin/login?next={quote(request.path_qs, safe='/')}{expired}")
                log.info("dashboard %s %s without a session from %s", request.method, request.path, request.remote)
                return await refusal(request, None, 401)
            session, staff = found
            request[SESSION], request[STAFF] = session, staff
            if not staff.may(permission):
                log.warning("dashboard: %s (%s) may not %s: %s %s", staff.email, staff.role, permission,
                            request.method, request.path)
                return await refusal(request, staff, 403)
            if request.method in UNSAFE:
                form = await request.post() if request.content_type in (
                    "application/x-www-form-urlencoded", "multipart/form-data") else None
                if not csrf_ok(request, session, form):
                    log.warning("dashboard: %s without a valid CSRF token from %s: %s %s", staff.email,
                                request.remote, request.method, request.path)
                    return await refusal(request, staff, 403, csrf=True)
            return await handler(request, staff)

        return guarded

    return decorate
