"""/admin/audit: the audit log, newest first, filtered by who, what, member and day (the same reading as
GET /api/v1/audit, rewards/audit.py)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

from aiohttp import web

from bot.web.dashboard import auth
from bot.web.dashboard.render import render
from rewards import audit as audit_log

NAV = [("/admin/audit", "dash_nav_audit", "read")]
PAGE = 50
# offered in the "what" filter (the log may hold others: they are listed when a page shows them)
KNOWN_WHATS = ("adjust_points", "use_coupon", "approve_referral", "void_referral", "profile", "add_stock",
               "add_codes", "broadcast", "broadcast_cancel", "broadcast_resume", "add_staff", "remove_staff",
               "account_add", "account_remove", "account_reset_password")


def _day(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw) if raw and len(raw) == 10 else None
    except ValueError:
        return None


@auth.requires("read")
async def audit_page(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    q = request.query
    zone = auth.services(request).program.rules.timezone
    since, until = _day(q.get("since")), _day(q.get("until"))

    def ms(day: date | None) -> int | None:
        return int(datetime.combine(day, time.min, tzinfo=zone).timestamp() * 1000) if day else None

    where = audit_log.AuditFilter(
        who=(q.get("who") or "").strip()[:100] or None, what=(q.get("what") or "").strip()[:60] or None,
        member=(q.get("member") or "").strip()[:40] or None, since_ms=ms(since),
        until_ms=ms(until + timedelta(days=1)) if until else None)
    before = q.get("before")
    before = before if before and audit_log.ENTRY_ID.fullmatch(before) else None
    rows, cursor = await audit_log.read(auth.services(request).redis, limit=PAGE, before=before, newest_first=True,
                                        where=where)
    filters = {"who": where.who or "", "what": where.what or "", "member": where.member or "",
               "since": since.isoformat() if since else "", "until": until.isoformat() if until else ""}
    older = str(request.rel_url.with_query({**{k: v for k, v in filters.items() if v}, "before": cursor})) \
        if cursor else None
    return render(request, staff, "audit.html", rows=rows, filters=filters, older=older,
                  whats=sorted({*KNOWN_WHATS, *(r.get("what", "") for r in rows)}))


def setup(app: web.Application, services_key: web.AppKey) -> None:
    app.router.add_get("/admin/audit", audit_page)
