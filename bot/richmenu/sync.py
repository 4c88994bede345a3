"""Rich menus: make LINE's menus match assets/richmenu/*.toml, idempotently (`python -m bot richmenu`).

A content hash of the request body and the image goes into the menu's `name`, so LINE itself says whether a
menu is current: a re-run with nothing changed creates nothing; a change creates a new menu, uploads its
image, makes it the default (customer menu), moves the alias, and then deletes the old one. Creating and
deleting menus is limited by LINE to 100 an hour each; a counter in Redis refuses clearly before LINE would.

The staff menu is then linked per user (everyone in STAFF_USER_IDS, and whoever `link_staff_menu` linked).
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from linebot.v3.messaging import (
    ApiException,
    AsyncApiClient,
    AsyncMessagingApiBlob,
    Configuration,
    CreateRichMenuAliasRequest,
    RichMenuRequest,
    UpdateRichMenuAliasRequest,
)

from bot.chat.postback import key_for
from bot.config import Settings
from bot.infra import keys
from bot.line.client import LineClient
from bot.line.limits import RICH_MENU_CALLS_PER_HOUR
from bot.richmenu.image import menu_image
from bot.richmenu.spec import MENUS, STAFF_ALIAS, Menu, RichMenuError, load_menus
from bot.richmenu.staff import link_staff_menu
from rewards.scripts import register

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
_LUA = Path(__file__).resolve().parent / "lua"


class TooManyCalls(RichMenuError):
    """LINE's hourly limit for creating (or deleting) rich menus would be passed."""


def content_hash(request: dict[str, Any], image: bytes) -> str:
    digest = hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode())
    digest.update(image)
    return digest.hexdigest()[:24]


def data_api_url(settings: Settings) -> str:
    """Image uploads go to api-data.line.me; a simulator (any other base) serves both."""
    base = settings.line_api_base_url
    return "https://api-data.line.me" if base == "https://api.line.me" else base


@dataclass
class Applied:
    alias: str
    rich_menu_id: str
    created: bool
    deleted: list[str] = dataclasses.field(default_factory=list)


class RichMenus:
    """Applies menu definitions to LINE. Built inside the running loop; `close()` when done."""

    def __init__(self, line: LineClient, redis: Any, *, now_ms: Callable[[], int] | None = None,
                 per_hour: int = RICH_MENU_CALLS_PER_HOUR):
        self.line = line
        self.api = line.api
        self.redis = redis
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.per_hour = per_hour
        self.postback_key = key_for(line.settings.channel_secret)
        configuration = Configuration(access_token=line.settings.channel_access_token,
                                      host=data_api_url(line.settings))
        self._data_client = AsyncApiClient(configuration)
        self.blob = AsyncMessagingApiBlob(self._data_client)
        self._window = register(redis, _LUA / "rate_window.lua")
        self._timeout = line.settings.line_timeout_seconds

    async def close(self) -> None:
        await self._data_client.close()

    async def _take(self, endpoint: str) -> None:
        taken, value = await self._window(keys=[keys.richmenu_calls(endpoint)],
                                          args=[self.now_ms(), HOUR_MS, self.per_hour, uuid.uuid4().hex])
        if not taken:
            again = datetime.fromtimestamp(int(value) / 1000, UTC).strftime("%H:%M UTC")
            raise TooManyCalls(f"LINE allows {self.per_hour} rich menu {endpoint}s an hour and this channel "
                               f"made {self.per_hour} in the last hour; try again after {again}")

    async def _alias_target(self, alias: str) -> str | None:
        try:
            found = await self.api.get_rich_menu_alias(alias, _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status in (400, 404):
                return None
            raise
        return str(found.rich_menu_id)

    async def _default_id(self) -> str | None:
        try:
            return str((await self.api.get_default_rich_menu_id(_request_timeout=self._timeout)).rich_menu_id)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def apply(self, menu: Menu) -> Applied:
        """Make LINE show `menu`; creates nothing when LINE already has it exactly."""
        request = menu.request(self.postback_key)
        image, content_type = menu_image(menu)
        name = f"{menu.alias}#{content_hash(request, image)}"
        listed = await self.api.get_rich_menu_list(_request_timeout=self._timeout)
        ours = [m for m in listed.richmenus if m.name.startswith(menu.alias + "#")]
        target = await self._alias_target(menu.alias)
        current = next((m for m in ours if m.name == name and m.rich_menu_id == target), None)
        if current is not None:
            menu_id, created = str(current.rich_menu_id), False
        else:
            await self._take("create")  # before anything is changed: a refusal leaves LINE as it was
            made = await self.api.create_rich_menu(RichMenuRequest.from_dict({**request, "name": name}),
                                                   _request_timeout=self._timeout)
            menu_id, created = str(made.rich_menu_id), True
            try:
                await self.blob.set_rich_menu_image(menu_id, image, _headers={"Content-Type": content_type},
                                                    _request_timeout=self._timeout)
            except (ApiException, asyncio.TimeoutError, OSError):
                await self._delete(menu_id)  # a menu without an image is of no use to anyone
                raise
            log.info("rich menu %s created: %s", menu.alias, menu_id)
        if menu.default and await self._default_id() != menu_id:
            await self.api.set_default_rich_menu(menu_id, _request_timeout=self._timeout)
        if target is None:
            await self.api.create_rich_menu_alias(
                CreateRichMenuAliasRequest.from_dict({"richMenuAliasId": menu.alias, "richMenuId": menu_id}),
                _request_timeout=self._timeout)
        elif target != menu_id:
            await self.api.update_rich_menu_alias(menu.alias, UpdateRichMenuAliasRequest.from_dict({"richMenuId": menu_id}),
                                                  _request_timeout=self._timeout)
        await self.redis.hset(keys.RICHMENU_IDS, menu.alias, menu_id)
        applied = Applied(alias=menu.alias, rich_menu_id=menu_id, created=created)
        for old in ours:  # older versions, and leftovers of a run that stopped half-way
            if old.rich_menu_id != menu_id and await self._delete(str(old.rich_menu_id)):
                applied.deleted.append(str(old.rich_menu_id))
        return applied

    async def _delete(self, menu_id: str) -> bool:
        try:
            await self._take("delete")
            await self.api.delete_rich_menu(menu_id, _request_timeout=self._timeout)
            return True
        except (TooManyCalls, ApiException) as exc:
            log.warning("old rich menu %s not deleted (a later run will): %s", menu_id, exc)
            return False

    async def link_staff(self, user_ids: set[str]) -> list[str]:
        """Link the staff menu to each user; returns who was linked (a non-friend is logged and skipped)."""
        linked = []
        for user_id in sorted(user_ids):
            if await link_staff_menu(self.line, self.redis, user_id):
                linked.append(user_id)
        return linked


async def sync(line: LineClient, redis: Any, directory: Path = MENUS, *, now_ms: Callable[[], int] | None = None,
               per_hour: int = RICH_MENU_CALLS_PER_HOUR) -> list[Applied]:
    """Apply every menu file (switch targets first, so a switch never points at a missing alias),
    then link the staff menu to the staff."""
    menus = load_menus(directory)
    if not await redis.set(keys.RICHMENU_LOCK, "1", nx=True, ex=600):
        raise RichMenuError("another `python -m bot richmenu` is running (or stopped less than 10 minutes ago)")
    menus_api = RichMenus(line, redis, now_ms=now_ms, per_hour=per_hour)
    try:
        applied = [await menus_api.apply(m) for m in sorted(menus, key=lambda m: not m.default)]
        if any(m.alias == STAFF_ALIAS for m in menus):
            staff = set(line.settings.staff_user_ids)
            staff |= {u.decode() if isinstance(u, bytes) else u for u in await redis.smembers(keys.RICHMENU_STAFF_LINKED)}
            await menus_api.link_staff(staff)
        return applied
    except ApiException as exc:
        raise RichMenuError(f"LINE answered {exc.status}: {(exc.body or exc.reason or '')[:300]}") from exc
    except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise RichMenuError(f"LINE could not be reached ({exc!r}); nothing half-done is kept, run it again") from exc
    finally:
        await menus_api.close()
        await redis.delete(keys.RICHMENU_LOCK)
