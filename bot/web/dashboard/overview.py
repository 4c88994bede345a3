"""/admin/: the overview. A placeholder from the foundation (dash-core); dash-ops makes it the program's
numbers with charts."""
from __future__ import annotations

from aiohttp import web

from bot.web.dashboard import auth
from bot.web.dashboard.render import render

NAV = [("/admin/", "dash_nav_overview", "read")]


@auth.requires("read")
async def overview(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    return render(request, staff, "overview.html")


def setup(app: web.Application, services_key: web.AppKey) -> None:
    app.router.add_get("/admin/", overview)
    app.router.add_get("/admin", home)


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/admin/")
