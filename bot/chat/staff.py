"""Staff: who they are (STAFF_USER_IDS plus ones added through the admin API), the `is_staff` filter, and
a staff member's conversation step (a multi-step command such as composing a broadcast), kept by
bot/conversation.py with a TTL, so an abandoned flow simply expires.
"""
from __future__ import annotations

from typing import Any

from bot.chat import conversation
from bot.chat.context import Ctx
from bot.infra import keys
from bot.services import Services

STATE_TTL_SECONDS = 15 * 60


async def is_staff_user(services: Services, user_id: str) -> bool:
    if user_id in services.settings.staff_user_ids:
        return True
    return bool(await services.redis.sismember(keys.STAFF, user_id))


async def is_staff(ctx: Ctx) -> bool:
    """Filter: the sender is staff. Placed on every staff route, so for anyone else those routes do not
    exist and the customer handlers (or the fallback) answer as if the staff words meant nothing.

    Put it LAST on a route, after the route's own words or `in_step` (free: the step comes with the
    sighting). Then the staff set is asked (SISMEMBER) only for a text that is a staff command or for a
    user in a staff step, not for every member's text. That removes the round trip from the hot path
    without a cache: a cache of the set would let a removed staff member keep staff powers for a while in
    other processes, and reading it with the sighting is not possible in the script (another slot)."""
    cached = ctx.__dict__.get("_is_staff")  # asked once per event, however many staff routes look
    if cached is None:
        cached = ctx.__dict__["_is_staff"] = await is_staff_user(ctx.services, ctx.user_id)
    return bool(cached)


async def add_staff(services: Services, user_id: str) -> bool:
    return bool(await services.redis.sadd(keys.STAFF, user_id))


async def remove_staff(services: Services, user_id: str) -> bool:
    return bool(await services.redis.srem(keys.STAFF, user_id))


async def staff_list(services: Services) -> tuple[list[str], list[str]]:
    """(from STAFF_USER_IDS, added through the API)."""
    added = sorted(u.decode() for u in await services.redis.smembers(keys.STAFF))
    return sorted(services.settings.staff_user_ids), added


# ---- conversation steps: kept by bot/conversation.py, one per user, so a staff step and a member's
# profile step replace and cancel each other -----------------------------------------------------
async def step_of(services: Services, user_id: str) -> dict[str, str]:
    return await conversation.state(services.redis, user_id)


async def set_step(services: Services, user_id: str, step: str, **data: str) -> None:
    await conversation.begin(services.redis, user_id, step, ttl=STATE_TTL_SECONDS, **data)


async def clear_step(services: Services, user_id: str) -> bool:
    return await conversation.end(services.redis, user_id)


def in_step(*steps: str) -> Any:
    """Filter: the staff member is in one of these steps; hands the state to the handler as `state`."""
    async def check(ctx: Ctx) -> dict[str, Any] | None:
        if await ctx.pending_step() not in steps:  # known from the sighting: no round trip for most texts
            return None
        state = await step_of(ctx.services, ctx.user_id)
        return {"state": state} if state.get("step") in steps else None

    return check
