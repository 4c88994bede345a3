"""A member's pending conversation step ("the next text is my nickname"): one at a time, in Redis with a TTL,
so a step nobody finishes simply lapses and a worker restart loses nothing."""
from __future__ import annotations

from typing import Any

from bot import keys

STEP_TTL_SECONDS = 10 * 60


async def begin(redis: Any, user_id: str, step: str) -> None:
    """Start a step; it replaces any other pending step (one at a time)."""
    await redis.set(keys.conversation_step(user_id), step, ex=STEP_TTL_SECONDS)


async def pending(redis: Any, user_id: str) -> str | None:
    raw = await redis.get(keys.conversation_step(user_id))
    return raw.decode() if raw else None


async def end(redis: Any, user_id: str) -> bool:
    """True when a step was pending."""
    return bool(await redis.delete(keys.conversation_step(user_id)))
