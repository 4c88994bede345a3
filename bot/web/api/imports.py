"""CSV imports of what the shop already has: POST /api/v1/imports/members and /api/v1/imports/orders, and
GET /api/v1/imports/{id} for an import that became a job.

The body is read as a stream, line by line with a bound per line, never whole: a file of at most SYNC_MAX_ROWS
rows is imported while the request waits and answered 200 {"imported", "skipped", "errors"}; a longer one is
spooled to a temporary file as it arrives (disk, not memory), answered 202 {"id"} and imported in the background
in batches, its progress in Redis. Every write is idempotent under its operation id (rewards/imports.py), so a
job cut short by a crash ("interrupted") is finished by posting the same file again: what was done is skipped.

Line numbers count the header as line 1. A bad row is reported as {"line", "code"} and writes nothing; blank
lines are passed over. Row codes: see ROW_CODES and README "Importing what the shop already has".
"""
from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import logging
import os
import re
import secrets
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from bot.infra import keys
from bot.services import Services
from bot.web.api.account_links import CUSTOMER_ID
from bot.web.api.conversions import MAX_AMOUNT_YEN, ORDER_ID
from bot.web.http import USER_ID, ApiError
from rewards import times
from rewards.imports import MemberRow, OrderRow

log = logging.getLogger(__name__)

SYNC_MAX_ROWS = 1_000  # up to this many lines after the header: answered at once (200); more: a job (202)
MAX_LINE_BYTES = 4_096  # a row longer than this is LINE_TOO_LONG (every valid row is far shorter)
MAX_BODY_BYTES = 64 * 1024 * 1024  # 64 MiB: ~600,000 member rows; more is 413 BODY_TOO_LARGE
UPLOAD_SECONDS = 900  # the whole body: 64 MiB at ~0.6 Mbit/s; a slower upload holds a connection too long
MAX_POINTS = 10_000_000
BATCH = 200  # rows written side by side (their commands share pipelines), then the job's progress is saved
ERRORS_KEPT = 1_000  # a job keeps its first row errors; errors_total counts them all
JOB_KEPT_SECONDS = 7 * 86_400
STALE_MS = 5 * 60_000  # a running job whose progress has not moved for this long died with its process
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # joined_at and occurred_at before this are typos, not history
IMPORT_ID = re.compile(r"[0-9a-f]{32}")
BOM = b"\xef\xbb\xbf"


class Jobs:
    """The import jobs running in this process (kept referenced until done; cancelled on shutdown)."""
    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()


JOBS = web.AppKey("import_jobs", Jobs)

# every code a row may get, in the order they are checked
ROW_CODES = ("LINE_TOO_LONG", "BAD_ENCODING", "WRONG_COLUMNS", "BAD_USER_ID", "BAD_CUSTOMER_ID", "BAD_POINTS",
             "BAD_JOINED_AT", "BAD_ORDER_ID", "BAD_BUYER", "BAD_AMOUNT", "BAD_OCCURRED_AT", "DUPLICATE_USER_ID",
             "DUPLICATE_CUSTOMER_ID", "DUPLICATE_ORDER_ID", "POINTS_DIFFER", "CUSTOMER_LINKED_ELSEWHERE",
             "MEMBER_LINKED_ELSEWHERE", "UNKNOWN_CUSTOMER", "ORDER_CONFLICT")


class RowError(Exception):
    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Kind:
    """One kind of import: its columns and how a row becomes a domain row."""
    name: str
    columns: tuple[str, ...]
    required: tuple[str, ...]
    parse: Callable[[dict[str, str], Services], Any]
    claims: Callable[[Any], list[tuple[str, str]]]  # (dedupe member, its DUPLICATE_ code), first claim first
    write: Callable[[Services, Any], Awaitable[str]]


def _when(value: str, s: Services, code: str) -> int:
    now = s.program.now_ms()
    try:
        return times.within(value, s.program.rules.timezone, now,
                            past=timedelta(milliseconds=now) - (EARLIEST - datetime(1970, 1, 1, tzinfo=UTC)),
                            future=times.CLOCK_SKEW)
    except times.TimeRefused as exc:
        raise RowError(code) from exc


def _count(value: str, high: int, code: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 12 or int(value) > high:
        raise RowError(code)
    return int(value)


def _user(value: str) -> str:
    if not USER_ID.fullmatch(value):
        raise RowError("BAD_USER_ID")
    return value


def _customer(value: str) -> str | None:
    if value == "":
        return None
    if not CUSTOMER_ID.fullmatch(value):
        raise RowError("BAD_CUSTOMER_ID")
    return value


def _member_row(r: dict[str, str], s: Services) -> MemberRow:
    uid = _user(r["user_id"])
    customer_id = _customer(r.get("customer_id", ""))
    points = _count(r["points"], MAX_POINTS, "BAD_POINTS") if r.get("points") else None
    joined = _when(r["joined_at"], s, "BAD_JOINED_AT") if r.get("joined_at") else None
    return MemberRow(user_id=uid, customer_id=customer_id, points=points, joined_at_ms=joined)


def _order_row(r: dict[str, str], s: Services) -> OrderRow:
    if not ORDER_ID.fullmatch(r["order_id"]):
        raise RowError("BAD_ORDER_ID")
    user_raw, customer_raw = r.get("user_id", ""), r.get("customer_id", "")
    if (user_raw == "") == (customer_raw == ""):
        raise RowError("BAD_BUYER")  # exactly one of user_id and customer_id names the buyer
    uid = _user(user_raw) if user_raw else None
    customer_id = _customer(customer_raw)
    amount = _count(r["amount"], MAX_AMOUNT_YEN, "BAD_AMOUNT")
    if not r["occurred_at"]:
        raise RowError("BAD_OCCURRED_AT")
    at = _when(r["occurred_at"], s, "BAD_OCCURRED_AT")
    return OrderRow(order_id=r["order_id"], amount=amount, occurred_at_ms=at, user_id=uid, customer_id=customer_id)


def _member_claims(row: MemberRow) -> list[tuple[str, str]]:
    claims = [(f"u:{row.user_id}", "DUPLICATE_USER_ID")]
    if row.customer_id:
        claims.append((f"c:{row.customer_id}", "DUPLICATE_CUSTOMER_ID"))
    return claims


def _order_claims(row: OrderRow) -> list[tuple[str, str]]:
    return [(f"o:{row.order_id}", "DUPLICATE_ORDER_ID")]


KINDS = {
    "members": Kind("members", ("user_id", "customer_id", "points", "joined_at"), ("user_id",), _member_row,
                    _member_claims, lambda s, row: s.program.imports.member(row)),
    "orders": Kind("orders", ("order_id", "user_id", "customer_id", "amount", "occurred_at"),
                   ("order_id", "amount", "occurred_at"), _order_row, _order_claims,
                   lambda s, row: s.program.imports.order(row)),
}


# ---- the body, line by line -------------------------------------------------------------------------------------
async def split_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The lines of a stream of chunks, without their line ends (LF or CRLF). A line longer than MAX_LINE_BYTES is
    cut to MAX_LINE_BYTES + 1 bytes (so its reader knows it was too long) and the rest of it dropped as it comes."""
    buf = b""
    dropping = False
    async for chunk in chunks:
        buf += chunk
        while True:
            end = buf.find(b"\n")
            if end < 0:
                break
            line, buf = buf[:end], buf[end + 1:]
            if dropping:
                dropping = False
                continue
            yield line.removesuffix(b"\r")[:MAX_LINE_BYTES + 1]
        if len(buf) > MAX_LINE_BYTES and not dropping:
            yield buf[:MAX_LINE_BYTES + 1]
            dropping = True
        if dropping:
            buf = b""
    if buf and not dropping:
        yield buf.removesuffix(b"\r")[:MAX_LINE_BYTES + 1]


async def body_chunks(request: web.Request, seconds: float) -> AsyncIterator[bytes]:
    """The request body as it arrives: each chunk within `seconds` and all of it within UPLOAD_SECONDS (a trickle is
    cut off, not waited for), MAX_BODY_BYTES in all."""
    total = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + UPLOAD_SECONDS
    while True:
        try:
            chunk = await asyncio.wait_for(request.content.readany(), min(seconds, max(0.0, end - loop.time())))
        except asyncio.TimeoutError as exc:
            raise ApiError(408, "BODY_TIMEOUT", f"the body stalled for {seconds:g} s, or took over "
                                                f"{UPLOAD_SECONDS} s in all") from exc
        if not chunk:
            return
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            raise ApiError(413, "BODY_TOO_LARGE", f"an import is at most {MAX_BODY_BYTES} bytes: split the file")
        yield chunk


async def file_chunks(path: str) -> AsyncIterator[bytes]:
    f = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(f.read, 262_144):
            yield chunk
    finally:
        f.close()


def read_header(line: bytes | None, kind: Kind) -> list[str]:
    """The header's columns, or a 400 that says what is wrong with it (nothing is imported)."""
    if line is None:
        raise ApiError(400, "EMPTY_FILE", f"the file is empty: its first line is the header ({','.join(kind.columns)})")
    try:
        text = line.removeprefix(BOM).decode()
        columns = [c.strip() for c in next(csv.reader([text]))]
    except (UnicodeDecodeError, csv.Error, StopIteration) as exc:
        raise ApiError(400, "BAD_HEADER", "the first line must be the CSV header, UTF-8") from exc
    unknown = [c for c in columns if c not in kind.columns]
    if unknown:
        raise ApiError(400, "UNKNOWN_COLUMN", f"unknown column {unknown[0][:40]!r}: the columns are "
                                              f"{', '.join(kind.columns)}")
    if len(set(columns)) != len(columns):
        raise ApiError(400, "DUPLICATE_COLUMN", "a column is named twice in the header")
    missing = [c for c in kind.required if c not in columns]
    if missing:
        raise ApiError(400, "MISSING_COLUMN", f"the header has no {missing[0]} column")
    if kind.name == "orders" and "user_id" not in columns and "customer_id" not in columns:
        raise ApiError(400, "MISSING_COLUMN", "the header needs user_id or customer_id (or both) to name the buyer")
    return columns


# ---- one import run ---------------------------------------------------------------------------------------------
@dataclass
class Run:
    """The rows of one file after its header: checked, claimed once per file, written in batches."""
    services: Services
    kind: Kind
    columns: list[str]
    run_id: str
    lines_read: int = 1  # the header
    imported: int = 0
    skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)  # this batch's (a job moves them to Redis)
    errors_total: int = 0
    _batch: list[tuple[int, bytes]] = field(default_factory=list)

    async def add(self, line: bytes) -> bool:
        """One more line of the file; True when it completed a batch, which was written."""
        self.lines_read += 1
        if line.strip():
            self._batch.append((self.lines_read, line))
        if len(self._batch) >= BATCH:
            await self.flush()
            return True
        return False

    async def flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        parsed: list[tuple[int, Any]] = []
        for number, line in batch:
            try:
                parsed.append((number, self._parse(line)))
            except RowError as exc:
                self._error(number, exc.code)
        claimed = await self._claim(parsed)
        outcomes = await asyncio.gather(*(self.kind.write(self.services, row) for _, row in claimed))
        for (number, _), outcome in zip(claimed, outcomes, strict=True):
            if outcome == "imported":
                self.imported += 1
            elif outcome == "skipped":
                self.skipped += 1
            else:
                self._error(number, outcome)
        self.errors.sort(key=lambda e: e["line"])

    def _parse(self, line: bytes) -> Any:
        if len(line) > MAX_LINE_BYTES:
            raise RowError("LINE_TOO_LONG")
        try:
            text = line.decode()
        except UnicodeDecodeError as exc:
            raise RowError("BAD_ENCODING") from exc
        try:
            values = next(csv.reader([text]))
        except (csv.Error, StopIteration) as exc:
            raise RowError("WRONG_COLUMNS") from exc
        if len(values) != len(self.columns):
            raise RowError("WRONG_COLUMNS")
        return self.kind.parse({c: v.strip() for c, v in zip(self.columns, values, strict=True)}, self.services)

    async def _claim(self, parsed: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
        """The rows whose ids no earlier row of the file claimed (the first row with an id owns it)."""
        if not parsed:
            return []
        redis = self.services.redis
        seen = keys.import_seen(self.run_id)
        async with redis.pipeline(transaction=False) as pipe:
            for _, row in parsed:
                for member, _code in self.kind.claims(row):
                    pipe.sadd(seen, member)
            pipe.expire(seen, JOB_KEPT_SECONDS)
            answers = iter((await pipe.execute())[:-1])
        kept = []
        for number, row in parsed:
            refused = [code for _, code in self.kind.claims(row) if not next(answers)]
            if refused:
                self._error(number, refused[0])
            else:
                kept.append((number, row))
        return kept

    def _error(self, line: int, code: str) -> None:
        self.errors.append({"line": line, "code": code})
        self.errors_total += 1


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    app[JOBS] = Jobs()

    def services(request: web.Request) -> Services:
        return request.app[services_key]

    async def stop_jobs(app: web.Application) -> None:
        tasks = list(app[JOBS].tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    app.on_shutdown.append(stop_jobs)

    def handler(kind: Kind) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def post(request: web.Request) -> web.Response:
            if request.content_type != "text/csv":
                raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "send the file as Content-Type: text/csv (UTF-8)")
            s = services(request)
            lines = split_lines(body_chunks(request, s.settings.body_read_seconds))
            first = None
            async for line in lines:
                first = line
                break
            columns = read_header(first, kind)
            run = Run(s, kind, columns, secrets.token_hex(16))
            head: list[bytes] = []
            ended = True
            async for line in lines:
                head.append(line)
                if len(head) > SYNC_MAX_ROWS:
                    ended = False
                    break
            if ended:
                for line in head:
                    await run.add(line)
                await run.flush()
                await s.redis.delete(keys.import_seen(run.run_id))
                await _audit(s, run, "done")
                log.info("import of %s: %d imported, %d skipped, %d bad rows", kind.name, run.imported, run.skipped,
                         run.errors_total)
                return web.json_response({"imported": run.imported, "skipped": run.skipped, "errors": run.errors})
            path = await _spool(head, lines)
            await _job_begin(s, run, kind)
            task = asyncio.create_task(_job(s, run, path))
            request.app[JOBS].tasks.add(task)
            task.add_done_callback(request.app[JOBS].tasks.discard)
            return web.json_response({"id": run.run_id}, status=202,
                                     headers={"Location": f"/api/v1/imports/{run.run_id}"})
        return post

    async def job_status(request: web.Request) -> web.Response:
        import_id = request.match_info["import_id"]
        if not IMPORT_ID.fullmatch(import_id):
            raise ApiError(404, "UNKNOWN_IMPORT", "no import with that id")
        s = services(request)
        job = {k.decode(): v.decode() for k, v in (await s.redis.hgetall(keys.import_job(import_id))).items()}
        if not job:
            raise ApiError(404, "UNKNOWN_IMPORT", "no import with that id (a job is kept 7 days)")
        errors = [json.loads(e) for e in await s.redis.lrange(keys.import_errors(import_id), 0, -1)]
        status = job["status"]
        if status == "running" and s.program.now_ms() - int(job["updated_at"]) > STALE_MS:
            status = "interrupted"  # its process died: posting the same file again finishes it
        return web.json_response({
            "id": import_id, "kind": job["kind"], "status": status, "lines_read": int(job["lines_read"]),
            "imported": int(job["imported"]), "skipped": int(job["skipped"]), "errors": errors,
            "errors_total": int(job["errors_total"]), "created_at": int(job["created_at"]),
            "finished_at": int(job["finished_at"]) if job.get("finished_at") else None})

    app.router.add_post("/api/v1/imports/members", handler(KINDS["members"]))
    app.router.add_post("/api/v1/imports/orders", handler(KINDS["orders"]))
    app.router.add_get("/api/v1/imports/{import_id}", job_status)


async def _spool(head: list[bytes], lines: AsyncIterator[bytes]) -> str:
    """The rest of a long file into a temporary file as it arrives (each line already bounded)."""
    fd, path = tempfile.mkstemp(prefix="shokai-import-", suffix=".csv")
    try:
        with os.fdopen(fd, "wb") as f:
            for line in head:
                f.write(line + b"\n")
            async for line in lines:
                f.write(line + b"\n")
    except BaseException:
        os.unlink(path)
        raise
    return path


async def _job_begin(s: Services, run: Run, kind: Kind) -> None:
    now = s.program.now_ms()
    async with s.redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.import_job(run.run_id), mapping={
            "kind": kind.name, "status": "running", "lines_read": 1, "imported": 0, "skipped": 0, "errors_total": 0,
            "created_at": now, "updated_at": now})
        pipe.expire(keys.import_job(run.run_id), JOB_KEPT_SECONDS)
        await pipe.execute()


async def _progress(s: Services, run: Run, status: str | None = None) -> None:
    """The job's counts so far and its first errors, in one MULTI (one hash tag)."""
    job, errs = keys.import_job(run.run_id), keys.import_errors(run.run_id)
    kept = int(await s.redis.llen(errs))
    fields: dict[str, Any] = {"lines_read": run.lines_read, "imported": run.imported, "skipped": run.skipped,
                              "errors_total": run.errors_total, "updated_at": s.program.now_ms()}
    if status:
        fields.update(status=status, finished_at=s.program.now_ms())
    async with s.redis.pipeline(transaction=True) as pipe:
        pipe.hset(job, mapping=fields)
        new = [json.dumps(e) for e in run.errors[:max(0, ERRORS_KEPT - kept)]]
        if new:
            pipe.rpush(errs, *new)
        pipe.expire(errs, JOB_KEPT_SECONDS)
        await pipe.execute()
    run.errors = []


async def _audit(s: Services, run: Run, status: str) -> None:
    """An import in the audit log, once it ended (opening balances and links are staff actions)."""
    await s.program.audit("admin-api", f"import_{run.kind.name}", "", op=f"import:{run.run_id}", id=run.run_id,
                          status=status, lines=run.lines_read, imported=run.imported, skipped=run.skipped,
                          errors=run.errors_total)


async def _job(s: Services, run: Run, path: str) -> None:
    """A long import in the background: the spooled file in batches, the progress saved after each."""
    status = "failed"
    try:
        async for line in split_lines(file_chunks(path)):
            if await run.add(line):
                await _progress(s, run)
        await run.flush()
        status = "done"
    except asyncio.CancelledError:
        status = "interrupted"
        raise
    except Exception:
        log.exception("import %s failed at line %d", run.run_id, run.lines_read)
    finally:
        with contextlib.suppress(Exception):
            await _progress(s, run, status)
            await s.redis.delete(keys.import_seen(run.run_id))
            await _audit(s, run, status)
        os.unlink(path)
        log.info("import job %s (%s) %s: %d lines, %d imported, %d skipped, %d bad rows", run.run_id, run.kind.name,
                 status, run.lines_read, run.imported, run.skipped, run.errors_total)
