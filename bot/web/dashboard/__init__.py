"""The staff dashboard at /admin/: server-rendered pages over the same domain functions as the admin API.

Each page is a module with `setup(app, services_key)` and `NAV` (its entries in the nav: path, label key,
permission); PAGES lists them in nav order. Adding a page is adding its module here.
"""
from __future__ import annotations

from types import ModuleType

from aiohttp import web

from bot.web.dashboard import (
    accounts_page,
    audit_log,
    auth,
    broadcasts,
    members,
    overview,
    referrals,
    rewards,
    signin,
)
from bot.web.dashboard.render import NAV, STATIC, setup_templates

PAGES: list[ModuleType] = [
    signin,
    overview,
    members,
    referrals,
    broadcasts,
    rewards,
    accounts_page,
    audit_log,
]


def setup(app: web.Application, services_key: web.AppKey) -> None:
    app[auth.SERVICES_KEY] = services_key
    setup_templates(app)
    app[NAV] = [entry for module in PAGES for entry in getattr(module, "NAV", [])]
    app.router.add_static("/admin/static/", STATIC, name="dashboard_static", append_version=False)
    for module in PAGES:
        module.setup(app, services_key)
