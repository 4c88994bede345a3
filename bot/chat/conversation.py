"""A user's pending conversation step ("the next text is my nickname", a staff member's broadcast draft):
one per user, in one Redis hash with a TTL, so a step nobody finishes simply lapses, a worker restart loses
nothing, and starting or cancelling any step ends whatever other step was pending. The handlers use it
through their flows (bot/chat/flows.py)."""
from __future__ import annotations

from typing import Any

from bot.infra import keys

STEP_TTL_SECONDS = 10 * 60


async def begin(redis: Any, user_id: str, step: str, ttl: int = STEP_TTL_SECONDS, **data: str) -> None:
    """Start a step with its data; it replaces any other pending step (one at a time)."""
    key = keys.conversation_step(user_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.hset(key, mapping={"step": step, **data})
        pipe.expire(key, ttl)
        await pipe.execute()


async def state(redis: Any, user_id: str) -> dict[str, str]:
    """The pending step and its data ({} when none)."""
    raw = await redis.hgetall(keys.conversation_step(user_id))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def pending(redis: Any, user_id: str) -> str | None:
    raw = await redis.hget(keys.conversation_step(user_id), "step")
    return raw.decode() if raw else None


async def end(redis: Any, user_id: str) -> bool:
    """True when a step was pending."""
    return bool(await redis.delete(keys.conversation_step(user_id)))
