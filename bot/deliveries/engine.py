"""The durable delivery engine: outbound webhooks and LINE webhooks forwarded to the shop's other tool.

A delivery is (target URL, the exact body bytes, headers, a stable id), stored in Redis (enqueue.lua) before
anything is sent, so a crash after we answered whoever caused it loses nothing. A Sender runs in every worker
process: it claims due deliveries one attempt at a time (claim.lua moves the due time on by a visibility
timeout, so two senders never make the same attempt at once, and a sender that dies lets it come due again),
POSTs them with a per-attempt timeout and a bound on attempts in flight (a slow receiver holds one slot, never
the others), and settles the attempt (settle.lua, only by the claim's holder):

- a 2xx: delivered;
- anything else (another status, a timeout, a refused connection): tried again, the first retry after
  FIRST_RETRY_MS, then the gap doubles up to MAX_GAP_MS; once a delivery is GIVE_UP_AFTER_MS old, its next
  failure gives it up ("failed"), recorded with every attempt.

At least once: a receiver dedupes on the delivery id (webhook-id), the same on every attempt.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from redis.exceptions import RedisError

from bot.deliveries import keys
from rewards.scripts import register

log = logging.getLogger(__name__)

_LUA = Path(__file__).resolve().parent / "lua"
FIRST_RETRY_MS = 5_000  # the first retry comes within 10 s
MAX_GAP_MS = 3_600_000  # the gap doubles up to an hour
GIVE_UP_AFTER_MS = 24 * 3_600_000  # retried for at least 24 hours
ATTEMPT_TIMEOUT_S = 10.0  # one attempt's whole time: a receiver slower than this counts as failing
VISIBILITY_MS = 60_000  # a claimed attempt is nobody else's for this long (well past the attempt's timeout)
CONCURRENCY = 32  # attempts in flight per sender
PER_TARGET = 8  # of which to one host at most: a receiver that hangs holds these, never the other slots
POLL_S = 1.0  # how often a sender looks for due deliveries
KEEP_S = 7 * 86_400  # a finished delivery (and its attempts) stays visible, and deduplicated, this long
LOG_MAX = 60  # attempts kept per delivery (a delivery given up after 24 h makes about 35)
INDEX_MAX = 1_000  # deliveries listed per owner (endpoint, forwarding)
FORWARD_OWNER = "forward"


def next_gap_ms(attempts_made: int) -> int:
    """The wait after the n-th failed attempt: 5 s, 10 s, 20 s … up to an hour."""
    return int(min(MAX_GAP_MS, FIRST_RETRY_MS * 2 ** max(0, attempts_made - 1)))


@dataclass(frozen=True)
class NewDelivery:
    id: str
    url: str
    body: bytes
    headers: dict[str, str]
    owner: str
    type: str


@dataclass(frozen=True)
class Delivery(NewDelivery):
    """A delivery as kept, claimed for an attempt: what was queued, and its state."""

    created_ms: int
    attempts: int  # counting the one claimed now
    claim: str

    @classmethod
    def from_hash(cls, fields: dict[str, bytes]) -> Delivery:
        return cls(id=fields["id"].decode(), url=fields["url"].decode(), body=fields["body"],
                   headers=json.loads(fields["headers"]), owner=fields["owner"].decode(),
                   type=fields["type"].decode(), created_ms=int(fields["created"]),
                   attempts=int(fields["attempts"]), claim=fields.get("claim", b"").decode())


class Signer(Protocol):
    """What a kind of owner adds to each attempt (outbound webhooks sign it) and hears back."""

    async def prepare(self, delivery: Delivery, now_ms: int) -> dict[str, str] | str:
        """The headers for this attempt, or why the delivery is dropped (its endpoint deleted or disabled)."""

    async def attempted(self, delivery: Delivery, ok: bool, gave_up: bool, now_ms: int, detail: str) -> None:
        """An attempt's outcome (`detail`: the answer's code or the error), for the endpoint's health."""


def _pairs(raw: list[Any]) -> dict[str, bytes]:
    return {(raw[i].decode() if isinstance(raw[i], bytes) else raw[i]): raw[i + 1] for i in range(0, len(raw), 2)}


class Deliveries:
    """Store deliveries and read them back (the API's listing)."""

    def __init__(self, redis: Any, now_ms: Callable[[], int]):
        self.redis = redis
        self.now_ms = now_ms
        self._enqueue = register(redis, _LUA / "enqueue.lua")

    async def enqueue(self, deliveries: list[NewDelivery], now_ms: int | None = None) -> str:
        """Store the deliveries in one step, due now; "1" created / "0" already there, per delivery."""
        if not deliveries:
            return ""
        now = now_ms if now_ms is not None else self.now_ms()
        key_list = [keys.DUE]
        args: list[Any] = [now, INDEX_MAX]
        for d in deliveries:
            key_list += [keys.delivery(d.id), keys.owned_by(d.owner)]
            args += [d.id, d.url, d.body, json.dumps(d.headers), d.owner, d.type]
        flags = await self._enqueue(keys=key_list, args=args)
        return flags.decode() if isinstance(flags, bytes) else str(flags)

    async def listing(self, owner: str, limit: int = 100) -> list[dict[str, Any]]:
        """The owner's deliveries, newest first, each with every attempt (status, answer code, next try)."""
        ids = [i.decode() for i in await self.redis.zrevrange(keys.owned_by(owner), 0, limit - 1)]
        out = []
        for delivery_id in ids:
            fields = {k.decode(): v for k, v in (await self.redis.hgetall(keys.delivery(delivery_id))).items()}
            if not fields:  # expired: forgotten after KEEP_S
                continue
            attempts = [json.loads(a) for a in await self.redis.lrange(keys.attempts(delivery_id), 0, -1)]
            nxt = fields.get("next", b"").decode()
            out.append({"id": delivery_id, "type": fields["type"].decode(), "url": fields["url"].decode(),
                        "status": fields["status"].decode(), "created_at": int(fields["created"]) // 1000,
                        "attempts": attempts, "next_attempt_at": int(nxt) // 1000 if nxt else None})
        return out

    async def status(self, delivery_id: str) -> str | None:
        raw = await self.redis.hget(keys.delivery(delivery_id), "status")
        return raw.decode() if raw is not None else None

    async def due_count(self) -> int:
        return int(await self.redis.zcard(keys.DUE))


class Sender:
    """Claims due deliveries and makes their attempts; one in every worker process (claims keep them apart)."""

    def __init__(self, redis: Any, now_ms: Callable[[], int], signers: dict[str, Signer] | None = None,
                 concurrency: int = CONCURRENCY, timeout_s: float = ATTEMPT_TIMEOUT_S, per_target: int = PER_TARGET,
                 counted: Callable[[str, str], None] | None = None):
        self.redis = redis
        self.now_ms = now_ms
        self.signers = signers or {}  # by owner prefix ("wh"): owners without one send their stored headers
        self.timeout_s = timeout_s
        self._claim = register(redis, _LUA / "claim.lua")
        self._settle = register(redis, _LUA / "settle.lua")
        self._in_flight: set[asyncio.Task[None]] = set()
        self._per_host: Counter[str] = Counter()  # attempts in flight by target host
        self.per_target = per_target
        self.counted = counted or (lambda kind, outcome: None)  # (owner kind, outcome) per attempt: metrics
        self._session: aiohttp.ClientSession | None = None
        self.concurrency = concurrency

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    async def run(self, stopping: asyncio.Event, poll_s: float = POLL_S) -> None:
        """Every poll_s: claim what is due (as many as there are free slots) and send it in the background."""
        try:
            while not stopping.is_set():
                try:
                    await self.tick(wait=False)
                except RedisError as exc:
                    log.warning("deliveries not claimed: %s", exc)
                except Exception:  # one bad tick must not end the worker
                    log.exception("the delivery sender failed unexpectedly; trying again later")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stopping.wait(), poll_s)
        finally:
            await self.close()

    async def tick(self, wait: bool = True, now_ms: int | None = None) -> int:
        """Claim the due deliveries that fit in the free slots and start their attempts; with `wait`, until
        they are all settled (tests). Returns how many attempts started."""
        now = now_ms if now_ms is not None else self.now_ms()
        free = self.concurrency - len(self._in_flight)
        started = 0
        if free > 0:
            # a few more than the free slots: those to a host already at its share wait for a later tick
            due = [raw.decode() for raw in await self.redis.zrangebyscore(keys.DUE, "-inf", now, start=0,
                                                                          num=free * 4)]
            urls = await asyncio.gather(*(self.redis.hget(keys.delivery(i), "url") for i in due))
            for delivery_id, url in zip(due, urls, strict=True):
                host = urlsplit(url.decode()).netloc if url else ""
                if started == free:
                    break
                if self._per_host[host] >= self.per_target:
                    continue
                fields = await self._claim(keys=[keys.DUE, keys.delivery(delivery_id)],
                                           args=[delivery_id, now, VISIBILITY_MS, uuid.uuid4().hex])
                if not fields:
                    continue  # another sender has it, or it is gone
                self._per_host[host] += 1
                task = asyncio.create_task(self._attempt(Delivery.from_hash(_pairs(fields))))
                self._in_flight.add(task)
                task.add_done_callback(functools.partial(self._done, host))
                started += 1
        if wait and self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)
        return started

    def _done(self, host: str, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._per_host[host] -= 1
        if not self._per_host[host]:
            del self._per_host[host]
        if not task.cancelled() and task.exception() is not None:  # Redis failed mid-attempt: the claim lapses
            log.warning("delivery attempt not settled: %s", task.exception())

    async def _attempt(self, d: Delivery) -> None:
        signer_kind = d.owner.split(":", 1)[0]
        signer = self.signers.get(signer_kind)
        headers = d.headers
        if signer is not None:
            prepared = await signer.prepare(d, self.now_ms())
            if isinstance(prepared, str):
                log.info("delivery %s dropped: %s", d.id, prepared)
                self.counted(signer_kind, "dropped")
                await self._settle_it(d, "dropped", 0, json.dumps({"at": self.now_ms() // 1000,
                                                                    "error": prepared}))
                return
            headers = prepared
        started = time.perf_counter()
        at_s = self.now_ms() // 1000
        code: int | None = None
        error = ""
        try:
            async with self._http().post(d.url, data=d.body, headers=headers, allow_redirects=False) as r:
                code = r.status
                await r.content.read(4096)  # a little of the answer; the rest is not ours to wait for
        except asyncio.TimeoutError:
            error = "timeout"
        except (aiohttp.ClientError, OSError) as exc:
            error = type(exc).__name__
        ok = code is not None and 200 <= code < 300
        now = self.now_ms()
        attempt = {"n": d.attempts, "at": at_s, "code": code, "error": error or None,
                   "ms": round((time.perf_counter() - started) * 1000)}
        if ok:
            outcome, due = "delivered", 0
        elif now - d.created_ms >= GIVE_UP_AFTER_MS:
            outcome, due = "failed", 0
        else:
            outcome, due = "retry", now + next_gap_ms(d.attempts)
        if not ok:
            log.info("delivery %s to %s: attempt %d failed (%s)%s", d.id, d.url, d.attempts, code or error,
                     " — given up" if outcome == "failed" else "")
        if signer is not None:
            await signer.attempted(d, ok, outcome == "failed", now,
                                   f"HTTP {code}" if code is not None else error)
        await self._settle_it(d, outcome, due, json.dumps(attempt))
        self.counted(signer_kind, outcome)

    async def _settle_it(self, d: Delivery, outcome: str, due_ms: int, attempt: str) -> None:
        settled = await self._settle(keys=[keys.DUE, keys.delivery(d.id), keys.attempts(d.id)],
                                     args=[d.id, d.claim, outcome, due_ms, attempt, KEEP_S, LOG_MAX])
        if not settled:
            log.warning("delivery %s: the claim lapsed before the attempt settled; another sender has it", d.id)

    async def close(self, grace_s: float = 1.0) -> None:
        """Stop: attempts still in flight after `grace_s` are cancelled; their claims lapse and they are made
        again (by any worker) once the visibility timeout has passed: at least once, never lost."""
        if self._in_flight:
            _, late = await asyncio.wait(list(self._in_flight), timeout=grace_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        if self._session is not None:
            await self._session.close()
