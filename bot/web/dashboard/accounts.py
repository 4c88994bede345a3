"""Staff accounts of the dashboard: an email, a role and an Argon2 hash of the password, kept in Redis.

One hash holds every account (field: the email, value: JSON), so adding one is a single HSETNX and the
whole list one HGETALL; a shop has a handful of accounts. `generation` grows with every password reset:
a session remembers the generation it was made under, so a reset (or a removal) ends every session of
the account at its next request (sessions.py).
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from rewards.keys import PREFIX

ACCOUNTS = f"{PREFIX}:dash:accounts"  # hash: email -> {"role", "hash", "generation", "created_at"}
ROLES = ("viewer", "staff", "owner")
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s.]{1,63}")
MIN_PASSWORD, MAX_PASSWORD = 10, 200

_HASHER = PasswordHasher()  # argon2id with the library's defaults (RFC 9106's low-memory profile)
# checked against when the email is unknown, so that answer takes as long as a wrong password
_DUMMY_HASH = _HASHER.hash("no account has this password")


# Argon2 work runs on threads of its own (one per core, at most 4): a flood of sign-ins queues here
# instead of taking every core and every thread of the default pool
_ARGON2_THREADS = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="argon2")


async def _argon2(function: Callable[..., object], *args: str) -> object:
    return await asyncio.get_running_loop().run_in_executor(_ARGON2_THREADS, function, *args)


def use_hasher(hasher: PasswordHasher) -> None:
    """Hash new passwords with `hasher` (the test suite's cheap one; a stored hash names its own parameters,
    so every existing hash still verifies)."""
    global _HASHER, _DUMMY_HASH
    _HASHER, _DUMMY_HASH = hasher, hasher.hash("no account has this password")


class AccountError(ValueError):
    """A refused account change: `code` for the caller, the message for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Account:
    email: str
    role: str
    generation: int
    created_at: int  # epoch ms


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_email(email: str) -> str:
    email = normalise_email(email)
    if not EMAIL.fullmatch(email):
        raise AccountError("INVALID_EMAIL", f"not an email address: {email[:80]!r}")
    return email


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError("INVALID_ROLE", f"the role must be one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError("WEAK_PASSWORD", f"the password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def _account(email: str, raw: bytes | str | None) -> Account | None:
    if raw is None:
        return None
    data = json.loads(raw)
    return Account(email=email, role=data["role"], generation=int(data["generation"]),
                   created_at=int(data.get("created_at", 0)))


class StaffAccounts:
    def __init__(self, redis: Any, now_ms: Callable[[], int] | None = None):
        self.redis = redis
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))

    async def _raw(self, email: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(ACCOUNTS, email)
        return json.loads(raw) if raw is not None else None

    async def add(self, email: str, role: str, password: str) -> Account:
        """A new account; AccountError EXISTS when the email has one."""
        email, role, password = check_email(email), check_role(role), check_password(password)
        hashed = str(await _argon2(_HASHER.hash, password))
        created = int(self.now_ms())
        record = {"role": role, "hash": hashed, "generation": 1, "created_at": created}
        if not await self.redis.hsetnx(ACCOUNTS, email, json.dumps(record)):
            raise AccountError("EXISTS", f"{email} already has an account")
        return Account(email, role, 1, created)

    async def remove(self, email: str) -> bool:
        """True when there was such an account. Its sessions end at their next request."""
        return bool(await self.redis.hdel(ACCOUNTS, normalise_email(email)))

    async def reset_password(self, email: str, password: str) -> Account:
        """A new password; every session of the account ends. AccountError UNKNOWN when there is no account."""
        email, password = normalise_email(email), check_password(password)
        hashed = str(await _argon2(_HASHER.hash, password))
        record = await self._raw(email)
        if record is None:
            raise AccountError("UNKNOWN", f"{email} has no account")
        record.update(hash=hashed, generation=int(record["generation"]) + 1)
        await self.redis.hset(ACCOUNTS, email, json.dumps(record))
        return Account(email, record["role"], record["generation"], int(record.get("created_at", 0)))

    async def get(self, email: str) -> Account | None:
        email = normalise_email(email)
        return _account(email, await self.redis.hget(ACCOUNTS, email))

    async def list(self) -> list[Account]:
        raw = await self.redis.hgetall(ACCOUNTS)
        found = [_account(k.decode() if isinstance(k, bytes) else k, v) for k, v in raw.items()]
        return sorted((a for a in found if a is not None), key=lambda a: a.email)

    async def count(self) -> int:
        return int(await self.redis.hlen(ACCOUNTS))

    async def verify(self, email: str, password: str) -> Account | None:
        """The account when the password is right; None for a wrong password and for an unknown email alike
        (both checked against an Argon2 hash, so they take the same time)."""
        email = normalise_email(email)
        record = await self._raw(email)
        hashed = record["hash"] if record is not None else _DUMMY_HASH
        try:
            await _argon2(_HASHER.verify, hashed, password[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            return None
        if record is None:
            return None
        return Account(email, record["role"], int(record["generation"]), int(record.get("created_at", 0)))
