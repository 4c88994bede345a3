"""Staff: who they are (STAFF_USER_IDS plus ones added through the admin API) and the `is_staff` filter, which
is also the guard of the staff conversation flows (bot/chat/flows.py).
"""
from __future__ import annotations

from bot.chat.context import Ctx
from bot.infra import keys
from bot.services import Services

STEP_TTL_SECONDS = 15 * 60  # a staff flow's pending step (a broadcast draft, say) lapses after this


async def is_staff_user(services: Services, user_id: str) -> bool:
    if user_id in services.settings.staff_user_ids:
        return True
    return bool(await services.redis.sismember(keys.STAFF, user_id))


async def is_staff(ctx: Ctx) -> bool:
    """Filter: the sender is staff. Placed on every staff route, so for anyone else those routes do not
    exist and the customer handlers (or the fallback) answer as if the staff words meant nothing.

    Put it LAST on a route, after the route's own words or flow state (`flow.at`, free: the step comes with
    the sighting). Then the staff set is asked (SISMEMBER) only for a text that is a staff command or for a
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

