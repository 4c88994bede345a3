"""Server-side sessions of the dashboard, in Redis; the browser holds only a random token in a cookie.

A session is a hash under the SHA-256 of its token (a leaked key name is no cookie): the account's email,
the account's password generation when it was made, the CSRF token of its forms and when it was last used.
It ends after `idle_ms` without a request (checked against the program's clock, which tests move; Redis
also expires the key after that long) and as soon as its account is removed or its password reset (the
generation no longer matches).
"""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from rewards.keys import PREFIX

COOKIE = "shokai_admin"
COOKIE_PATH = "/admin"
TOUCH_EVERY_MS = 60_000  # the last-used time is written at most this often (a page loads several times a minute)


def _key(token: str) -> str:
    return f"{PREFIX}:dash:session:{hashlib.sha256(token.encode()).hexdigest()}"


@dataclass(frozen=True)
class Session:
    token: str
    email: str
    generation: int
    csrf: str
    seen_ms: int


class Sessions:
    def __init__(self, redis: Any, now_ms: Callable[[], int], idle_ms: int, secure: bool):
        self.redis, self.now_ms, self.idle_ms, self.secure = redis, now_ms, idle_ms, secure

    async def create(self, email: str, generation: int) -> Session:
        token, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), int(self.now_ms())
        key = _key(token)
        await self.redis.hset(key, mapping={"email": email, "generation": generation, "csrf": csrf,
                                            "created_ms": now, "seen_ms": now})
        await self.redis.pexpire(key, self.idle_ms)
        return Session(token, email, generation, csrf, now)

    async def get(self, token: str | None) -> Session | None:
        """The live session of this token (its last use moved to now), or None: unknown, or idle too long."""
        if not token or len(token) > 100:
            return None
        key = _key(token)
        raw = await self.redis.hgetall(key)
        if not raw:
            return None
        data = {k.decode(): v.decode() for k, v in raw.items()}
        now, seen = int(self.now_ms()), int(data["seen_ms"])
        if now - seen > self.idle_ms:
            await self.redis.delete(key)
            return None
        if now - seen >= min(TOUCH_EVERY_MS, self.idle_ms // 4):
            await self.redis.hset(key, "seen_ms", now)
            await self.redis.pexpire(key, self.idle_ms)
            seen = now
        return Session(token, data["email"], int(data["generation"]), data["csrf"], seen)

    async def end(self, token: str) -> None:
        await self.redis.delete(_key(token))

    def set_cookie(self, response: web.StreamResponse, session: Session) -> None:
        response.set_cookie(COOKIE, session.token, path=COOKIE_PATH, httponly=True, samesite="Lax",
                            secure=self.secure)

    def clear_cookie(self, response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE, path=COOKIE_PATH)
