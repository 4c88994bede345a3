"""The staff rich menu, linked per user: whoever `link_staff_menu` linked keeps it when a new staff menu is made."""
from __future__ import annotations

import logging
from typing import Any

from linebot.v3.messaging import ApiException

from bot.infra import keys
from bot.line.client import LineClient
from bot.richmenu.spec import STAFF_ALIAS

log = logging.getLogger(__name__)


async def _staff_menu_id(line: LineClient, redis: Any) -> str | None:
    menu_id = await redis.hget(keys.RICHMENU_IDS, STAFF_ALIAS)
    if menu_id is not None:
        return menu_id.decode() if isinstance(menu_id, bytes) else str(menu_id)
    try:  # Redis was emptied since the menus were made: LINE's alias still knows
        found = await line.api.get_rich_menu_alias(STAFF_ALIAS, _request_timeout=line.settings.line_timeout_seconds)
    except ApiException:
        return None
    await redis.hset(keys.RICHMENU_IDS, STAFF_ALIAS, found.rich_menu_id)
    return str(found.rich_menu_id)


async def link_staff_menu(line: LineClient, redis: Any, user_id: str) -> bool:
    """Show the staff menu to this user (remembered, so a new staff menu is linked to them too).
    False when there is no staff menu yet (run `python -m bot richmenu`) or LINE refused the user."""
    await redis.sadd(keys.RICHMENU_STAFF_LINKED, user_id)
    menu_id = await _staff_menu_id(line, redis)
    if menu_id is None:
        log.warning("no staff rich menu yet: run `python -m bot richmenu`; %s will get it then", user_id)
        return False
    try:
        await line.api.link_rich_menu_id_to_user(user_id, menu_id, _request_timeout=line.settings.line_timeout_seconds)
    except ApiException as exc:
        log.warning("staff menu not linked to %s: LINE answered %s %s", user_id, exc.status, (exc.body or "")[:200])
        return False
    return True


async def unlink_staff_menu(line: LineClient, redis: Any, user_id: str) -> None:
    """Back to the default (customer) menu for this user."""
    await redis.srem(keys.RICHMENU_STAFF_LINKED, user_id)
    try:
        await line.api.unlink_rich_menu_id_from_user(user_id, _request_timeout=line.settings.line_timeout_seconds)
    except ApiException as exc:
        log.warning("staff menu not unlinked from %s: LINE answered %s", user_id, exc.status)


async def is_staff_menu_user(redis: Any, user_id: str) -> bool:
    return bool(await redis.sismember(keys.RICHMENU_STAFF_LINKED, user_id))
