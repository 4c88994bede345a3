"""Broadcasts to every member who has not blocked the account, by multicast in batches of 500.

Exactly once per recipient: the recipient list is fixed when the job starts, and batch i always
carries the retry key derived from (job, i), so a batch re-sent after a crash is answered 409 by LINE.
Segments, schedules, progress cards and quota checks come with the staff tools.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web
from linebot.v3.messaging import Message
from redis.exceptions import RedisError

from bot import keys
from bot.dispatcher import Services
from bot.line_client import LineRejected, MonthlyLimitReached, retry_key

log = logging.getLogger(__name__)

BATCH = 500  # LINE's multicast limit
LEASE_MS = 30_000


def _messages(body: dict[str, Any], bad_request: Any) -> list[dict]:
    if "text" in body:
        text = body["text"]
        if not isinstance(text, str) or not 1 <= len(text) <= 5000:
            raise bad_request("INVALID_TEXT", "text must be 1 to 5000 characters")
        return [{"type": "text", "text": text}]
    messages = body.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= 5:
        raise bad_request("INVALID_MESSAGES", "send text, or messages: a list of 1 to 5 LINE message objects")
    for i, message in enumerate(messages):
        try:
            Message.from_dict(message)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise bad_request("INVALID_MESSAGES", f"messages[{i}] is not a LINE message object: {exc}") from exc
    return messages


def setup_api(app: web.Application, services_key: web.AppKey[Services], read_body: Any, bad_request: Any) -> None:
    async def create(request: web.Request) -> web.Response:
        body = await read_body(request)
        if body.get("segment") not in (None, "all", {"type": "all"}):
            raise bad_request("SEGMENT_NOT_SUPPORTED", "segments are not available yet: omit segment to reach "
                                                       "every member who has not blocked the account")
        messages = _messages(body, bad_request)
        s = request.app[services_key]
        job_id = uuid.uuid4().hex
        await s.redis.hset(keys.broadcast(job_id), mapping={
            "status": "queued", "messages": json.dumps(messages, ensure_ascii=False), "total": 0, "sent": 0,
            "next_batch": 0, "created_at": int(time.time() * 1000)})
        await s.redis.rpush(keys.BROADCAST_QUEUE, job_id)
        await s.program.audit("admin-api", "broadcast", "*", job=job_id)
        return web.json_response({"id": job_id}, status=202)

    async def get(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        job = await request.app[services_key].redis.hgetall(keys.broadcast(job_id)) if len(job_id) == 32 else {}
        if not job:
            return web.json_response({"error": {"code": "UNKNOWN_BROADCAST", "message": "no broadcast with that id"}},
                                     status=404)
        j = {k.decode(): v.decode() for k, v in job.items()}
        return web.json_response({"id": job_id, "status": j["status"], "total": int(j["total"]),
                                  "sent": int(j["sent"]), "error": j.get("error")})

    app.router.add_post("/api/v1/broadcasts", create)
    app.router.add_get("/api/v1/broadcasts/{job_id}", get)


class BroadcastRunner:
    """Runs queued broadcasts in a worker; a job is leased, so two workers never send the same batch."""

    def __init__(self, services: Services, name: str):
        self.services = services
        self.redis = services.redis
        self.name = name
        self._lease = self.redis.register_script((Path(__file__).resolve().parent / "lua" / "lease.lua").read_text())

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                job_ids = [j.decode() for j in await self.redis.lrange(keys.BROADCAST_QUEUE, 0, 9)]
                for job_id in job_ids:
                    if await self._lease(keys=[keys.broadcast_lease(job_id)], args=[self.name, LEASE_MS]):
                        await self.send(job_id)
            except RedisError as exc:
                log.warning("broadcast runner: %s", exc)
            try:
                await asyncio.wait_for(stopping.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

    async def send(self, job_id: str) -> None:
        job_key, to_key = keys.broadcast(job_id), keys.broadcast_recipients(job_id)
        job = {k.decode(): v.decode() for k, v in (await self.redis.hgetall(job_key)).items()}
        if job.get("status") == "queued":  # fix the recipients once, before the first batch
            recipients = await self.services.program.active_members()
            await self.redis.delete(to_key)
            for start in range(0, len(recipients), 1000):
                await self.redis.rpush(to_key, *recipients[start:start + 1000])
            await self.redis.hset(job_key, mapping={"status": "running", "total": len(recipients),
                                                    "started_at": int(time.time() * 1000)})
            job["status"] = "running"
        if job.get("status") != "running":
            await self.redis.lrem(keys.BROADCAST_QUEUE, 0, job_id)
            return
        messages = json.loads(job["messages"])
        batch = int(job.get("next_batch", 0))
        while True:
            await self._lease(keys=[keys.broadcast_lease(job_id)], args=[self.name, LEASE_MS])
            to = [u.decode() for u in await self.redis.lrange(to_key, batch * BATCH, (batch + 1) * BATCH - 1)]
            if not to:
                break
            try:
                await self.services.line.multicast(to, messages, retry_key("broadcast", job_id, batch))
            except (MonthlyLimitReached, LineRejected, RuntimeError) as exc:
                log.error("broadcast %s stopped at batch %d: %s", job_id, batch, exc)
                await self.redis.hset(job_key, mapping={"status": "failed", "error": str(exc)[:300]})
                break
            batch += 1
            async with self.redis.pipeline(transaction=True) as pipe:  # progress and position move together
                pipe.hincrby(job_key, "sent", len(to))
                pipe.hset(job_key, "next_batch", batch)
                await pipe.execute()
        if (await self.redis.hget(job_key, "status")) == b"running":
            await self.redis.hset(job_key, mapping={"status": "done", "finished_at": int(time.time() * 1000)})
        await self.redis.lrem(keys.BROADCAST_QUEUE, 0, job_id)
