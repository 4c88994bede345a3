"""CSV exports of every member and every ledger entry, streamed in chunks so memory stays flat.

Every cell goes through `cell()`: text that a spreadsheet would take for a formula (a staff reason, an order id
or a nickname such as =HYPERLINK(...) or +cmd|...) is written with a leading single quote (OWASP's advice on
CSV injection), so it opens as text. Numbers we write ourselves (a delta of -50, a balance) are ints and are
written as numbers, untouched: only text is ever neutralised.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from bot.services import Services
from bot.web.http import shop_time

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what Excel, LibreOffice and Sheets read as a formula


def cell(value: Any) -> Any:
    """A CSV cell that opens as what it is: text starting like a formula gets a leading "'"; numbers stay."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def row_of(values: Iterable[Any]) -> list[Any]:
    return [cell(v) for v in values]


async def stream_csv(request: web.Request, name: str, header: list[str], rows: Any) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                           "Content-Disposition": f'attachment; filename="{name}"'})
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(row_of(header))
    async for row in rows:
        writer.writerow(row_of(row))
        if buffer.tell() > 64_000:
            await response.write(buffer.getvalue().encode())
            buffer.seek(0)
            buffer.truncate()
    await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    def services(request: web.Request) -> Services:
        return request.app[services_key]

    async def export_members(request: web.Request) -> web.StreamResponse:
        s = services(request)
        ids = await s.program.member_ids()

        async def rows() -> Any:
            for uid in ids:
                view = await s.program.member(uid)
                if view is None:
                    continue
                yield [uid, view.code or "", view.points, view.pending_points, view.lifetime_points, view.tier,
                       view.debt, int(view.blocked), view.lang or "", view.referrals.invited,
                       view.referrals.completed]

        return await stream_csv(request, "members.csv", [
            "user_id", "code", "points", "pending_points", "lifetime_points", "tier", "debt", "blocked", "lang",
            "referrals_invited", "referrals_completed"], rows())

    async def export_ledger(request: web.Request) -> web.StreamResponse:
        s = services(request)
        ids = await s.program.member_ids()

        async def rows() -> Any:
            for uid in ids:
                for e in await s.program.ledger(uid):
                    yield [uid, e.get("id"), e.get("op"), e.get("kind"), e.get("rule"), shop_time(s, e.get("at")),
                           e.get("delta", 0), e.get("balance"), e.get("state", "done"), e.get("note", "")]

        return await stream_csv(request, "ledger.csv", [
            "user_id", "entry_id", "operation_id", "kind", "rule", "at", "delta", "balance", "state", "note"], rows())

    app.router.add_get("/api/v1/exports/members.csv", export_members)
    app.router.add_get("/api/v1/exports/ledger.csv", export_ledger)
