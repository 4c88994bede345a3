"""Dashboard pages as HTML: jinja2 templates (through aiohttp-jinja2) in the page's language, with the nav,
the CSRF token for forms and the dashboard's own Content-Security-Policy (its scripts and styles from
/admin/static/ only, forms only back to this server, no framing)."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot.web.dashboard.auth import SESSION, Staff, services
from bot.web.pages.render import page_language

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
JINJA: web.AppKey[jinja2.Environment] = web.AppKey("dashboard_jinja", jinja2.Environment)
# the nav: (path, label key, permission), in the order PAGES lists their modules; filled by dashboard.setup()
NAV: web.AppKey[list[tuple[str, str, str]]] = web.AppKey("dashboard_nav", list)
LANG_COOKIE = "shokai_admin_lang"
LANGS = ("ja", "en")

POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
])
HEADERS = {"Content-Security-Policy": POLICY, "X-Frame-Options": "DENY", "Cache-Control": "no-store",
           "X-Robots-Tag": "noindex", "Referrer-Policy": "same-origin"}


def setup_templates(app: web.Application) -> None:
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(TEMPLATES), app_key=JINJA, autoescape=True,
                         undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def language(request: web.Request) -> str:
    """?lang=ja|en, else the one chosen before (a cookie), else the browser's: Japanese unless it prefers English."""
    asked = request.query.get("lang")
    if asked in LANGS:
        return asked
    remembered = request.cookies.get(LANG_COOKIE)
    if remembered in LANGS:
        return remembered
    lang = page_language(request, services(request).texts)
    return lang if lang in LANGS else "ja"


def translator(request: web.Request, lang: str) -> Any:
    texts = services(request).texts

    def t(key: str, **values: Any) -> str:
        return texts.get(lang, key, **values)

    return t


def translator_or(request: web.Request, lang: str) -> Any:
    """t_or("key", "fallback"): the text when the key exists (a status or kind named by data), else the fallback."""
    texts = services(request).texts

    def t_or(key: str, fallback: str, **values: Any) -> str:
        return texts.get(lang, key, **values) if key in texts.locales.get(lang, {}) else fallback

    return t_or


def shop_time(request: web.Request, at_ms: int | str | None, with_seconds: bool = False) -> str:
    """Epoch ms as the shop's local date and time ("" when unset)."""
    if not at_ms:
        return ""
    at = datetime.fromtimestamp(int(at_ms) / 1000, services(request).program.rules.timezone)
    return at.strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")


def tier_label(rules: Any, name: str, lang: str) -> str:
    """A tier's name as the rules label it in this language (its id when they give no label)."""
    tier = next((t for t in rules.tiers if t.name == name), None)
    return str(tier.label.get(lang) or tier.label.get("ja") or name) if tier is not None else name


def page_context(request: web.Request, staff: Staff | None) -> dict[str, Any]:
    """What every template gets: t, lang, staff, csrf, nav, the current path, when() and yen()."""
    lang = language(request)
    session = request.get(SESSION)
    program = services(request).program
    nav = [(path, key) for path, key, permission in request.app[NAV] if staff is not None and staff.may(permission)]
    return {"t": translator(request, lang), "t_or": translator_or(request, lang), "lang": lang, "staff": staff, "csrf": session.csrf if session else "",
            "nav": nav, "path": request.path, "other_lang": "en" if lang == "ja" else "ja",
            "lang_url": str(request.rel_url.update_query(lang="en" if lang == "ja" else "ja")),
            "when": lambda at, seconds=False: shop_time(request, at, seconds),
            "yen": program.rules.yen, "tier_label": lambda name: tier_label(program.rules, name, lang)}


def render(request: web.Request, staff: Staff | None, template: str, *, status: int = 200,
           **context: Any) -> web.Response:
    """The page `template` (extending base.html) with `context` and what every page gets."""
    values = page_context(request, staff) | context
    html = request.app[JINJA].get_template(template).render(values)
    response = web.Response(text=html, status=status, content_type="text/html", headers=HEADERS)
    if request.query.get("lang") in LANGS:
        response.set_cookie(LANG_COOKIE, request.query["lang"], path="/admin", max_age=365 * 86_400,
                            httponly=True, samesite="Lax")
    return response


async def refusal(request: web.Request, staff: Staff | None, status: int, *, csrf: bool = False) -> web.Response:
    """The page for a refused request: 401 not signed in, 403 not allowed (or a missing CSRF token), 404."""
    key = {401: "dash_refused_signin", 403: "dash_refused_csrf" if csrf else "dash_refused_role",
           404: "dash_refused_missing", 429: "dash_refused_busy"}[status]
    return render(request, staff, "refused.html", status=status, message_key=key)
