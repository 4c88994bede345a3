"""Reading the audit log (every change staff, the API or the shop's systems made: who, what, when, on whom),
for the admin API (GET /api/v1/audit: oldest first, paged by cursor) and the staff dashboard (newest first,
filtered by who, what, member and time). Entries are written by Members.audit.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rewards import keys

ENTRY_ID = re.compile(r"\d{1,20}-\d{1,20}")
SCAN_CHUNK = 500


@dataclass(frozen=True)
class AuditFilter:
    who: str | None = None  # part of `who` (case-insensitive): "web:", an email, "admin-api", a LINE user id
    what: str | None = None  # the action exactly: adjust_points, use_coupon, …
    member: str | None = None  # the member's user id exactly
    since_ms: int | None = None  # at or after (the entry's `at`, the program's clock)
    until_ms: int | None = None  # before

    @property
    def empty(self) -> bool:
        return not (self.who or self.what or self.member or self.since_ms is not None or self.until_ms is not None)

    def matches(self, row: dict[str, str]) -> bool:
        at = int(row.get("at") or 0)
        return ((not self.who or self.who.lower() in row.get("who", "").lower())
                and (not self.what or row.get("what") == self.what)
                and (not self.member or row.get("member") == self.member)
                and (self.since_ms is None or at >= self.since_ms)
                and (self.until_ms is None or at < self.until_ms))


def _row(entry_id: Any, fields: dict[Any, Any]) -> dict[str, str]:
    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    return {"id": text(entry_id), **{text(k): text(v) for k, v in fields.items()}}


async def read(redis: Any, *, limit: int, after: str | None = None, before: str | None = None,
               newest_first: bool = False, where: AuditFilter | None = None,
               scan_at_most: int = 20_000) -> tuple[list[dict[str, str]], str | None]:
    """Up to `limit` entries (each a dict of its fields and its `id`), oldest first from after `after`, or
    newest first from before `before`, that `where` matches; and the cursor to page on (None: no more).

    A filter reads the log in chunks and stops after `scan_at_most` entries, so one page never reads an
    unbounded log; the cursor then lets the reader go on from where it stopped."""
    where = where if where is not None and not where.empty else None
    found: list[dict[str, str]] = []
    cursor = after if not newest_first else before
    scanned = 0
    while len(found) < limit and scanned < scan_at_most:
        chunk = limit - len(found) if where is None else SCAN_CHUNK
        if newest_first:
            rows = await redis.xrevrange(keys.AUDIT, max=f"({cursor}" if cursor else "+", min="-", count=chunk)
        else:
            rows = await redis.xrange(keys.AUDIT, min=f"({cursor}" if cursor else "-", max="+", count=chunk)
        for entry_id, fields in rows:
            row = _row(entry_id, fields)
            cursor = row["id"]
            scanned += 1
            if where is None or where.matches(row):
                found.append(row)
                if len(found) == limit:
                    break
        if len(rows) < chunk:
            return found, None  # the end of the log
    return found, cursor
