"""Broadcasts: segmented, scheduled, personalised messages to members, sent by multicast exactly once each.

Staff tools (the admin API and the staff chat commands) use one small service:

    b = Broadcasts(services)
    await b.count(segment)                 -> int: members the segment reaches now (blocked ones never)
    await b.preview(body, sample=3)        -> {"total", "preview": [{"user_id", "messages"}], "warnings"}
    await b.create(body, by="staff:U…")    -> {"id", "status", "total", "warnings"?}  (dry_run: the preview, nothing stored)
    await b.get(id) / b.latest(limit)      -> job views (below), newest first
    await b.content(id)                    -> {"messages", "segment"} the job sends, as stored
    await b.cancel(id, by) / b.resume(id, by) -> the job view after
    await b.quota()                        -> {"limit": int | None, "used": int} this month, or None (LINE did not say)
    await b.estimate(body)                 -> the dry run and its cost: messages, quota, beyond the free quota, yen
  BroadcastError(code, message) for anything refused: nothing is stored then.

Request body (POST /api/v1/broadcasts, and `body` above), JSON-schema-ish:
    {"text": string 1..5000}  or  {"messages": [LINE message object, 1..5]}      (one of the two)
    "segment"?: segment JSON (rewards/segments.py; absent = every member who has not blocked the account)
    "scheduled_at"?: ISO 8601 date-time (no offset = the shop's time zone), from 5 minutes ago to 366 days
                     ahead (a time further off is a typo, not a plan); sent once it is due
    "dry_run"?: boolean — answer the count and a preview of what the first members would get; store nothing
  Text messages may carry {name} (the LINE display name with さん / as is in English; "お客さま" / "there"
  when LINE does not tell us), {points} (spendable points when the job starts) and {invite_link}.

The job view (get, latest, cancel, resume):
    {"id", "status": "queued"|"scheduled"|"running"|"paused"|"done"|"failed"|"cancelled",
     "total", "sent", "failed", "batches", "created_at", "scheduled_at", "started_at", "finished_at"
     (ISO 8601 or null), "by", "reason"? (why paused, failed, cancelled or waiting)}

The admin API's endpoints are bot/web/api/broadcasts.py; bot/broadcasts/runner.py sends the jobs.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from linebot.v3.messaging import ApiException, Message, MulticastRequest

from bot.infra import keys
from bot.line import limits as line_limits
from bot.line import links
from bot.services import Services
from rewards import segments, times
from rewards.scripts import register
from rewards.segments import MemberFacts, Segment, SegmentError

log = logging.getLogger(__name__)

SCAN_CHUNK = 1000
PROFILE_CONCURRENCY = 20
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
PLACEHOLDERS = ("name", "points", "invite_link")
SAMPLE_USER = "U" + "0" * 32
BODY_FIELDS = ("text", "messages", "segment", "scheduled_at", "dry_run")  # a request body has no other field
SCHEDULE_AHEAD_MAX = timedelta(days=366)
LUA = Path(__file__).resolve().parent / "lua"


def lua_script(redis: Any, name: str) -> Any:
    """One of the Lua scripts beside this module (broadcast_create, broadcast_step), registered."""
    return register(redis, LUA / f"{name}.lua")


class BroadcastError(Exception):
    """A broadcast request refused; nothing was stored."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def placeholders_in(messages: list[dict]) -> set[str]:
    """The {placeholders} the text messages carry."""
    return {name for m in messages if m.get("type") == "text" for name in PLACEHOLDER.findall(m.get("text", ""))}


def render(messages: list[dict], values: dict[str, str]) -> list[dict]:
    """Fill {name}, {points}, {invite_link} in text messages; other braces and other message types stay."""
    def fill(text: str) -> str:
        return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)

    return [{**m, "text": fill(m["text"])} if m.get("type") == "text" else m for m in messages]


def _iso(ms: str | None) -> str | None:
    if not ms or ms == "0":
        return None
    return datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat().replace("+00:00", "Z")


class Broadcasts:
    """The broadcast service staff tools call (see the module docstring)."""

    def __init__(self, services: Services, clock: Callable[[], float] = time.time):
        self.services = services
        self.redis = services.redis
        self.program = services.program
        self.clock = clock
        self._step = lua_script(self.redis, "broadcast_step")
        self._create = lua_script(self.redis, "broadcast_create")

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # ---- validation -----------------------------------------------------------------
    def messages(self, body: dict[str, Any]) -> list[dict]:
        """The messages of a request, checked with the SDK's models and LINE's limits at their longest."""
        if ("text" in body) == ("messages" in body):
            raise BroadcastError("INVALID_MESSAGES", "send either text or messages (1 to 5 LINE message objects)")
        if "text" in body:
            text = body["text"]
            if not isinstance(text, str) or not text.strip() or line_limits.text_length(text) > line_limits.TEXT_MAX:
                raise BroadcastError("INVALID_TEXT", "text must be 1 to 5000 characters")
            messages = [{"type": "text", "text": text}]
        else:
            messages = body["messages"]
            if not isinstance(messages, list) or not 1 <= len(messages) <= line_limits.MESSAGES_PER_REQUEST_MAX \
                    or not all(isinstance(m, dict) for m in messages):
                raise BroadcastError("INVALID_MESSAGES", "messages must be a list of 1 to 5 LINE message objects")
            for i, message in enumerate(messages):
                try:
                    Message.from_dict(message)
                except (ValueError, TypeError, AttributeError, KeyError) as exc:
                    raise BroadcastError("INVALID_MESSAGES",
                                         f"messages[{i}] is not a LINE message object: {exc}") from exc
        unknown = sorted(placeholders_in(messages) - set(PLACEHOLDERS))
        if unknown:
            raise BroadcastError("UNKNOWN_PLACEHOLDER", f"{{{unknown[0]}}} is not a placeholder; use "
                                 + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))
        longest = render(messages, {"name": "名" * line_limits.DISPLAY_NAME_MAX + "さん", "points": "100,000,000",
                                    "invite_link": links.invite_link(self.services.settings, "X" * 8)})
        try:
            MulticastRequest.from_dict({"to": [SAMPLE_USER], "messages": longest})
        except (ValueError, TypeError) as exc:
            raise BroadcastError("INVALID_MESSAGES", f"LINE would refuse these messages: {exc}") from exc
        problem = line_limits.problem(longest)
        if problem:
            raise BroadcastError("INVALID_MESSAGES", f"LINE would refuse these messages (with placeholders "
                                                     f"filled at their longest): {problem}")
        return messages

    def segment(self, raw: Any) -> Segment:
        try:
            return segments.parse(raw, self.program.rules, self._now_ms())
        except SegmentError as exc:
            raise BroadcastError("INVALID_SEGMENT", str(exc)) from exc

    def _scheduled(self, body: dict[str, Any]) -> int | None:
        value = body.get("scheduled_at")
        if value is None:
            return None
        try:
            return times.within(value, self.program.rules.timezone, self._now_ms(), past=times.CLOCK_SKEW,
                                future=SCHEDULE_AHEAD_MAX)
        except times.TimeRefused as exc:
            raise BroadcastError("INVALID_SCHEDULED_AT", f"scheduled_at {exc}") from exc

    # ---- who ------------------------------------------------------------------------
    async def recipients(self, segment: Segment, raw: Any = None) -> list[MemberFacts]:
        """The members a segment reaches now, in a stable order."""
        ids = segments.user_ids_only(raw)
        if ids is None:
            ids = await self.program.member_ids()
        found: list[MemberFacts] = []
        for start in range(0, len(ids), SCAN_CHUNK):
            found += [f for f in await self.program.member_facts(ids[start:start + SCAN_CHUNK]) if segment.matches(f)]
        return found

    async def recipient_ids(self, segment: Segment, raw: Any = None) -> list[str]:
        """The ids alone; for everyone, only the blocked flags are read (much cheaper than every fact)."""
        if segment.everyone:
            return list(await self.program.active_members())
        return [f.user_id for f in await self.recipients(segment, raw)]

    async def count(self, raw_segment: Any = None) -> int:
        return len(await self.recipient_ids(self.segment(raw_segment), raw_segment))

    async def _values(self, facts: MemberFacts, wanted: set[str]) -> dict[str, str]:
        texts = self.services.texts
        lang = texts.lang_for(facts.lang)
        values = {"points": f"{facts.points:,}"}
        if "invite_link" in wanted:
            values["invite_link"] = links.invite_link(self.services.settings, await self.program.invite_code(
                facts.user_id))
        if "name" in wanted:
            name = await self._display_name(facts.user_id)
            values["name"] = texts.get(lang, "broadcast_name", display=name) if name \
                else texts.get(lang, "broadcast_name_unknown")
        return values

    async def _display_name(self, uid: str) -> str | None:
        line = self.services.line
        try:
            profile = await line.api.get_profile(uid, _request_timeout=self.services.settings.line_timeout_seconds)
            return str(profile.display_name) if profile.display_name else None
        except (ApiException, asyncio.TimeoutError, OSError, ValueError):
            return None  # not a friend any more, or LINE would not say: the kind fallback

    async def rendered_groups(self, messages: list[dict], facts: list[MemberFacts]) -> list[tuple[list[dict], list[str]]]:
        """Recipients grouped by the messages they get: one group unless texts carry placeholders."""
        wanted = placeholders_in(messages)
        if not wanted:
            return [(messages, [f.user_id for f in facts])] if facts else []
        gate = asyncio.Semaphore(PROFILE_CONCURRENCY)

        async def one(f: MemberFacts) -> str:
            async with gate:
                return json.dumps(render(messages, await self._values(f, wanted)), ensure_ascii=False)

        rendered = await asyncio.gather(*(one(f) for f in facts))
        groups: dict[str, list[str]] = {}
        for f, key in zip(facts, rendered, strict=True):
            groups.setdefault(key, []).append(f.user_id)
        return [(json.loads(k), uids) for k, uids in groups.items()]

    # ---- the staff API ----------------------------------------------------------------
    async def quota(self) -> dict[str, int | None] | None:
        """LINE's message quota this month: {"limit": the plan's free messages (None: no limit), "used": sent
        so far}; None when LINE would not say."""
        api, timeout = self.services.line.api, self.services.settings.line_timeout_seconds
        try:
            quota = await api.get_message_quota(_request_timeout=timeout)
            used = (await api.get_message_quota_consumption(_request_timeout=timeout)).total_usage
        except (ApiException, asyncio.TimeoutError, OSError, ValueError) as exc:
            log.warning("could not read LINE's message quota: %s", exc)
            return None
        limited = getattr(quota.type, "value", quota.type) == "limited" and quota.value is not None
        return {"limit": int(quota.value) if limited else None, "used": int(used)}

    @staticmethod
    def _quota_warnings(total: int, quota: dict[str, int | None] | None) -> list[dict]:
        """A warning when LINE's monthly quota left is smaller than this send (LINE counts each recipient)."""
        if quota is None:
            return [{"code": "QUOTA_UNKNOWN", "message": "LINE's message quota could not be read"}]
        limit, used = quota["limit"], quota["used"] or 0
        if limit is None:
            return []
        remaining = max(0, limit - used)
        if total <= remaining:
            return []
        return [{"code": "QUOTA_EXCEEDED", "needed": total, "remaining": remaining,
                 "message": f"this broadcast needs {total} messages but only {remaining} are left this month: "
                            f"it will pause when LINE refuses, and can be resumed once the quota allows"}]

    async def preview(self, body: dict[str, Any], sample: int = 3) -> dict[str, Any]:
        total, shown = await self._sample(body, sample)
        return {"total": total, "preview": shown, "warnings": self._quota_warnings(total, await self.quota())}

    async def _sample(self, body: dict[str, Any], sample: int) -> tuple[int, list[dict]]:
        """How many the body's segment reaches, and what its first `sample` members would get."""
        messages = self.messages(body)
        raw = body.get("segment")
        facts = await self.recipients(self.segment(raw), raw)
        shown = []
        wanted = placeholders_in(messages)
        for f in facts[:sample]:
            filled = render(messages, await self._values(f, wanted)) if wanted else messages
            shown.append({"user_id": f.user_id, "messages": filled})
        return len(facts), shown

    async def estimate(self, body: dict[str, Any], sample: int = 1) -> dict[str, Any]:
        """A dry run (nothing stored) with what the send would cost: {"total", "preview", "warnings",
        "message_objects", "messages": what LINE counts (one per recipient and request, however many message
        objects it carries), "quota": {"limit", "used"} | None, "over_quota": messages beyond the plan's free
        quota, "yen": their price at the rules' [broadcasts] extra_message_yen}."""
        if "dry_run" in body:
            raise BroadcastError("INVALID_DRY_RUN", "an estimate is always a dry run")
        self._scheduled(body)
        total, shown = await self._sample(body, sample)
        quota = await self.quota()
        over = 0
        if quota is not None and quota["limit"] is not None:
            over = max(0, total - max(0, quota["limit"] - (quota["used"] or 0)))
        return {"total": total, "preview": shown, "warnings": self._quota_warnings(total, quota),
                "message_objects": len(self.messages(body)), "messages": total, "quota": quota,
                "over_quota": over, "yen": math.floor(over * self.program.rules.extra_message_yen + 0.5)}

    async def create(self, body: dict[str, Any], by: str, job_id: str | None = None) -> dict[str, Any]:
        """Validate and store a job (or, dry_run, only answer the count and a preview).

        With a job_id (staff chat derives it from the draft) a retried create answers the job already stored,
        marked "existing", instead of making a second one."""
        if not isinstance(body.get("dry_run", False), bool):
            raise BroadcastError("INVALID_DRY_RUN", "dry_run must be true or false")
        messages = self.messages(body)
        raw = body.get("segment")
        segment = self.segment(raw)
        scheduled = self._scheduled(body)
        if body.get("dry_run"):
            return {"dry_run": True, **await self.preview(body)}
        total = len(await self.recipient_ids(segment, raw))
        warnings = self._quota_warnings(total, await self.quota())
        now = self._now_ms()
        job_id = job_id or uuid.uuid4().hex
        status = "scheduled" if scheduled and scheduled > now else "queued"
        fields: dict[str, Any] = {
            "status": status, "messages": json.dumps(messages, ensure_ascii=False),
            "segment": json.dumps(segment.spec, ensure_ascii=False), "by": by, "created_at": now,
            "scheduled_at": scheduled or 0, "total": total, "sent": 0, "failed": 0, "batches": 0, "next_batch": 0}
        written = await self._create(keys=[keys.broadcast(job_id)], args=[x for kv in fields.items() for x in kv])
        # listed and queued after the job is stored; a retry after a crash between the steps finishes them
        if await self.redis.zscore(keys.BROADCASTS, job_id) is None:
            await self.redis.zadd(keys.BROADCASTS, {job_id: await self.redis.incr(keys.BROADCAST_SEQ)}, nx=True)
        if not written:
            was, at, count, first_by, spec, created = [(v or b"").decode() for v in await self.redis.hmget(
                keys.broadcast(job_id), "status", "scheduled_at", "total", "by", "segment", "created_at")]
            if was in ("queued", "scheduled"):
                await self.redis.zadd(keys.BROADCAST_QUEUE, {job_id: max(now, int(at or 0))}, nx=True)
            # the first try may have stopped before its audit entry: once per job, as the job was stored (with
            # the status it was created with: the runner may have started it since)
            created_as = "scheduled" if int(at or 0) > int(created or 0) else "queued"
            await self._audit_created(job_id, first_by, int(count or 0), created_as, spec)
            return {"id": job_id, "status": was, "total": int(count or 0), "existing": True}
        await self.redis.zadd(keys.BROADCAST_QUEUE, {job_id: max(now, scheduled or 0)})
        await self._audit_created(job_id, by, total, status, fields["segment"])
        answer: dict[str, Any] = {"id": job_id, "status": status, "total": total}
        if warnings:
            answer["warnings"] = warnings
        return answer

    async def _audit_created(self, job_id: str, by: str, total: int, status: str, segment: str) -> None:
        await self.program.audit(by, "broadcast", "*", op=f"broadcast:{job_id}", job=job_id, total=total,
                                 status=status, segment=segment)

    async def get(self, job_id: str) -> dict[str, Any] | None:
        if not re.fullmatch(r"[0-9a-f]{32}", job_id):
            return None
        raw = await self.redis.hgetall(keys.broadcast(job_id))
        if not raw:
            return None
        j = {k.decode(): v.decode() for k, v in raw.items()}
        view: dict[str, Any] = {
            "id": job_id, "status": j["status"], "total": int(j["total"]), "sent": int(j["sent"]),
            "failed": int(j.get("failed", 0)), "batches": int(j.get("batches", 0)), "by": j.get("by"),
            "created_at": _iso(j.get("created_at")), "scheduled_at": _iso(j.get("scheduled_at")),
            "started_at": _iso(j.get("started_at")), "finished_at": _iso(j.get("finished_at"))}
        if j.get("reason"):
            view["reason"] = j["reason"]
        return view

    async def content(self, job_id: str) -> dict[str, Any] | None:
        """What a job sends and to whom, as stored: {"messages": [...], "segment": its JSON ("everyone")}."""
        if not re.fullmatch(r"[0-9a-f]{32}", job_id):
            return None
        messages, segment = await self.redis.hmget(keys.broadcast(job_id), "messages", "segment")
        if messages is None:
            return None
        return {"messages": json.loads(messages), "segment": json.loads(segment) if segment else "everyone"}

    async def latest(self, limit: int = 50) -> list[dict[str, Any]]:
        ids = [i.decode() for i in await self.redis.zrevrange(keys.BROADCASTS, 0, limit - 1)]
        return [v for v in [await self.get(i) for i in ids] if v]

    async def _change(self, job_id: str, op: str, *args: Any) -> tuple[str, str]:
        after, before, _ = await self._step(keys=[keys.broadcast(job_id)], args=[op, self._now_ms(), *args])
        return after.decode(), before.decode()

    async def cancel(self, job_id: str, by: str) -> dict[str, Any]:
        if await self.get(job_id) is None:
            raise BroadcastError("UNKNOWN_BROADCAST", "no broadcast with that id", 404)
        after, before = await self._change(job_id, "cancel", f"CANCELLED by {by}")
        if after != "cancelled" or before == "cancelled":
            raise BroadcastError("NOT_CANCELLABLE", f"the broadcast is {before}: only queued, scheduled, running or "
                                                    "paused broadcasts can be cancelled", 409)
        if before != "running":  # a running job's runner takes it off the queue when it sees the cancel
            await self.redis.zrem(keys.BROADCAST_QUEUE, job_id)
        await self.program.audit(by, "broadcast_cancel", "*", job=job_id, before=before)
        return await self.get(job_id) or {}

    async def resume(self, job_id: str, by: str) -> dict[str, Any]:
        if await self.get(job_id) is None:
            raise BroadcastError("UNKNOWN_BROADCAST", "no broadcast with that id", 404)
        after, before = await self._change(job_id, "resume")
        if before != "paused":
            raise BroadcastError("NOT_PAUSED", f"the broadcast is {before}: only a paused broadcast resumes", 409)
        await self.redis.zadd(keys.BROADCAST_QUEUE, {job_id: self._now_ms()})
        await self.program.audit(by, "broadcast_resume", "*", job=job_id)
        return await self.get(job_id) or {}
