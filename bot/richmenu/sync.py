"""Rich menus: `python -m bot richmenu` makes LINE's menus match assets/richmenu/*.toml, idempotently.

Each file describes one menu (size, chat bar text, areas as data, brand colour). The image is the file's
`{name}.png|.jpg` when given, else drawn here with Pillow from the colour and the labels. A content hash of
the request body and the image goes into the menu's `name`, so LINE itself says whether a menu is current:
a re-run with nothing changed creates nothing; a change creates a new menu, uploads its image, makes it the
default (customer menu), moves the alias, and then deletes the old one. Creating and deleting menus is
limited by LINE to 100 an hour each; a counter in Redis refuses clearly before LINE would.

The staff menu is linked per user (everyone in STAFF_USER_IDS, and whoever `link_staff_menu` linked).
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import json
import logging
import re
import shutil
import subprocess
import time
import tomllib
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
from PIL import Image, ImageDraw, ImageFont

from bot.chat.postback import PostbackData, key_for
from bot.config import ASSETS, Settings
from bot.infra import keys
from bot.line.client import LineClient
from rewards.scripts import register

log = logging.getLogger(__name__)

MENUS = ASSETS / "richmenu"
CUSTOMER_ALIAS = "shokai-customer"
STAFF_ALIAS = "shokai-staff"
# LINE's limits (Messaging API reference, rich menu object and rate limits)
MAX_AREAS = 20
CHAT_BAR_MAX = 14
LABEL_MAX = 20
MESSAGE_TEXT_MAX = 300
IMAGE_MAX_BYTES = 1024 * 1024
PER_HOUR = 100  # create rich menu, delete rich menu: each endpoint its own bucket
HOUR_MS = 3_600_000
_LUA = Path(__file__).resolve().parent / "lua"
_FONT_PATHS = (  # Noto CJK where Debian (fonts-noto-cjk), Fedora and Arch put it; then macOS
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Bold.ttc",
    "/System/Library/Fonts/ヒラギノ角ゴシック W6.ttc",
)


class RichMenuError(Exception):
    """A menu file, an image or LINE said no: one line that says what and where; nothing half-done is left."""


class TooManyCalls(RichMenuError):
    """LINE's hourly limit for creating (or deleting) rich menus would be passed."""


@dataclass(frozen=True)
class MenuSwitched(PostbackData):
    """Sent by a richmenuswitch area, with LINE's switch: which menu (alias) the user now sees."""

    prefix = "rm.sw"
    to: str


@dataclass(frozen=True)
class Area:
    ja: str
    en: str
    bounds: tuple[int, int, int, int]  # x, y, width, height
    text: str | None = None  # a message action: what the tap sends
    switch: str | None = None  # a richmenuswitch action: the alias to show


@dataclass(frozen=True)
class Menu:
    alias: str
    default: bool
    selected: bool  # shown open when the chat is opened
    chat_bar_text: str
    width: int
    height: int
    colour: tuple[int, int, int]
    areas: tuple[Area, ...]
    source: Path  # the .toml it came from; a same-named .png/.jpg beside it is the image

    def request(self, postback_key: bytes) -> dict[str, Any]:
        """The RichMenuRequest body, without its name (the name carries the hash of this and the image)."""
        areas = []
        for area in self.areas:
            x, y, w, h = area.bounds
            if area.switch:
                action = {"type": "richmenuswitch", "label": area.ja, "richMenuAliasId": area.switch,
                          "data": MenuSwitched(area.switch).pack(postback_key)}
            else:
                action = {"type": "message", "label": area.ja, "text": area.text or area.ja}
            areas.append({"bounds": {"x": x, "y": y, "width": w, "height": h}, "action": action})
        return {"size": {"width": self.width, "height": self.height}, "selected": self.selected,
                "chatBarText": self.chat_bar_text, "areas": areas}


# ---- reading the menu files ------------------------------------------------------------
def load_menu(path: Path) -> Menu:
    """One menu file, checked against LINE's limits; RichMenuError names the file and the setting."""
    def bad(what: str) -> RichMenuError:
        return RichMenuError(f"{path.name}: {what}")

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise bad(f"cannot be read: {exc}") from exc
    try:
        alias, chat_bar = str(data["alias"]), str(data["chat_bar_text"])
        width, height = int(data["width"]), int(data["height"])
        raw_areas = list(data["areas"])
    except (KeyError, TypeError, ValueError) as exc:
        raise bad(f"needs alias, chat_bar_text, width, height and [[areas]] ({exc})") from exc
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", alias):
        raise bad(f"alias must be 1–32 letters, digits, _ or -: {alias!r}")
    if not 1 <= len(chat_bar) <= CHAT_BAR_MAX:
        raise bad(f"chat_bar_text must be 1–{CHAT_BAR_MAX} characters, {chat_bar!r} has {len(chat_bar)}")
    if not (800 <= width <= 2500 and height >= 250 and width / height >= 1.45):
        raise bad(f"size {width}×{height}: LINE needs width 800–2500, height ≥ 250, width/height ≥ 1.45")
    if not 1 <= len(raw_areas) <= MAX_AREAS:
        raise bad(f"has {len(raw_areas)} areas; LINE allows 1–{MAX_AREAS}")
    colour_text = str(data.get("colour", "#06C755"))
    if not re.fullmatch(r"#[0-9A-Fa-f]{6}", colour_text):
        raise bad(f"colour must look like #06C755, got {colour_text!r}")
    colour = (int(colour_text[1:3], 16), int(colour_text[3:5], 16), int(colour_text[5:7], 16))
    columns, rows = int(data.get("columns", 1)), int(data.get("rows", 1))
    areas = []
    for n, raw in enumerate(raw_areas):
        where = f"areas[{n}]"
        ja, en = str(raw.get("ja", "")), str(raw.get("en", ""))
        if not 1 <= len(ja) <= LABEL_MAX:
            raise bad(f"{where}.ja (the label) must be 1–{LABEL_MAX} characters: {ja!r}")
        if ("text" in raw) == ("switch" in raw):
            raise bad(f"{where} needs exactly one of text (send a message) or switch (another menu's alias)")
        text = str(raw["text"]) if "text" in raw else None
        if text is not None and not 1 <= len(text) <= MESSAGE_TEXT_MAX:
            raise bad(f"{where}.text must be 1–{MESSAGE_TEXT_MAX} characters")
        if "bounds" in raw:
            try:
                x, y, w, h = (int(v) for v in raw["bounds"])
            except (TypeError, ValueError) as exc:
                raise bad(f"{where}.bounds must be [x, y, width, height]") from exc
        else:
            if n >= columns * rows:
                raise bad(f"{where} has no bounds and the {columns}×{rows} grid is full")
            col, row = n % columns, n // columns
            x, y = col * width // columns, row * height // rows
            w, h = (col + 1) * width // columns - x, (row + 1) * height // rows - y
        if x < 0 or y < 0 or w < 1 or h < 1 or x + w > width or y + h > height:
            raise bad(f"{where}.bounds {[x, y, w, h]} do not fit in {width}×{height}")
        areas.append(Area(ja=ja, en=en, bounds=(x, y, w, h), text=text,
                          switch=str(raw["switch"]) if "switch" in raw else None))
    menu = Menu(alias=alias, default=bool(data.get("default", False)), selected=bool(data.get("selected", True)),
                chat_bar_text=chat_bar, width=width,
                height=height, colour=colour, areas=tuple(areas), source=path)
    try:  # the SDK's model is generated from LINE's OpenAPI spec: what it refuses, LINE refuses
        RichMenuRequest.from_dict({**menu.request(b"check"), "name": alias})
    except (ValueError, TypeError) as exc:
        raise bad(f"is not a valid rich menu: {exc}") from exc
    return menu


def load_menus(directory: Path = MENUS) -> list[Menu]:
    menus = [load_menu(path) for path in sorted(directory.glob("*.toml"))]
    aliases = [m.alias for m in menus]
    if len(set(aliases)) != len(aliases):
        raise RichMenuError(f"two menu files in {directory} share an alias: {aliases}")
    if sum(m.default for m in menus) > 1:
        raise RichMenuError(f"only one menu in {directory} can be the default")
    for menu in menus:
        for area in menu.areas:
            if area.switch and area.switch not in aliases:
                raise RichMenuError(f"{menu.source.name}: an area switches to {area.switch!r}, which no menu file has")
    return menus


# ---- the image -------------------------------------------------------------------------
def find_cjk_font() -> str | None:
    """A font with Japanese glyphs: Noto CJK at its usual places, else whatever fontconfig knows for ja."""
    for path in _FONT_PATHS:
        if Path(path).is_file():
            return path
    if shutil.which("fc-list"):
        try:
            listed = subprocess.run(["fc-list", ":lang=ja", "file"], capture_output=True, text=True,
                                    timeout=10, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        files = sorted({line.split(":")[0].strip() for line in listed.splitlines() if line.strip()},
                       key=lambda f: ("Sans" not in f, "Bold" not in f, f))
        return files[0] if files else None
    return None


def _font(path: str | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if path is None:
        return ImageFont.load_default(size)
    return ImageFont.truetype(path, size, index=0)  # index 0 of a Noto CJK collection is the JP face


def _fitting(path: str | None, text: str, size: int, max_width: int) -> Any:
    while True:
        font = _font(path, size)
        if size <= 12 or font.getlength(text) <= max_width:
            return font
        size = int(size * 0.9)


def render_image(menu: Menu) -> tuple[bytes, str]:
    """The menu's image: each area a tile in the brand colour, the Japanese label big, the English small."""
    font_path = find_cjk_font()
    if font_path is None:
        log.warning("no Japanese font found (install fonts-noto-cjk): the rich menu image uses Pillow's "
                    "default font, which has no Japanese glyphs")
    image = Image.new("RGB", (menu.width, menu.height), menu.colour)
    draw = ImageDraw.Draw(image)
    r, g, b = menu.colour
    ink = (31, 45, 61) if 0.299 * r + 0.587 * g + 0.114 * b > 170 else (255, 255, 255)
    for n, area in enumerate(menu.areas):
        x, y, w, h = area.bounds
        # neighbouring tiles a shade apart, so each tap target reads as its own button
        shade = 1.0 if (n + n // 3) % 2 == 0 else 0.9
        draw.rectangle((x, y, x + w - 1, y + h - 1), fill=tuple(int(c * shade) for c in menu.colour),
                       outline=(255, 255, 255), width=4)
        big = _fitting(font_path, area.ja, h // 6, int(w * 0.86))
        small = _fitting(font_path, area.en, h // 12, int(w * 0.86))
        cx, cy = x + w // 2, y + h // 2
        draw.text((cx, cy - h // 20), area.ja, font=big, fill=ink, anchor="ms")
        if area.en:
            draw.text((cx, cy + h // 20), area.en, font=small, fill=ink, anchor="mt")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    if out.tell() <= IMAGE_MAX_BYTES:
        return out.getvalue(), "image/png"
    for quality in (90, 80, 70, 60, 50):  # a photo-like brand image: JPEG is how LINE suggests fitting 1 MB
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=quality)
        if out.tell() <= IMAGE_MAX_BYTES:
            return out.getvalue(), "image/jpeg"
    raise RichMenuError(f"{menu.source.name}: the generated image does not fit in 1 MB")


def menu_image(menu: Menu) -> tuple[bytes, str]:
    """The image given beside the menu file (`customer.png` / `.jpg`), checked; else a generated one."""
    for suffix in (".png", ".jpg", ".jpeg"):
        given = menu.source.with_suffix(suffix)
        if given.is_file():
            return check_image(given.read_bytes(), menu, given.name)
    return render_image(menu)


def check_image(data: bytes, menu: Menu, name: str) -> tuple[bytes, str]:
    if len(data) > IMAGE_MAX_BYTES:
        raise RichMenuError(f"{name} is {len(data):,} bytes; LINE takes at most 1 MB")
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, size = image.format, image.size
    except OSError as exc:
        raise RichMenuError(f"{name} is not an image Pillow can read: {exc}") from exc
    if kind not in ("PNG", "JPEG"):
        raise RichMenuError(f"{name} is {kind}; LINE takes PNG or JPEG")
    if size != (menu.width, menu.height):
        raise RichMenuError(f"{name} is {size[0]}×{size[1]}; the menu is {menu.width}×{menu.height}")
    return data, "image/png" if kind == "PNG" else "image/jpeg"


def content_hash(request: dict[str, Any], image: bytes) -> str:
    digest = hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode())
    digest.update(image)
    return digest.hexdigest()[:24]


# ---- talking to LINE -------------------------------------------------------------------
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
                 per_hour: int = PER_HOUR):
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


# ---- what the staff side calls ---------------------------------------------------------
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


# ---- the command -----------------------------------------------------------------------
async def sync(line: LineClient, redis: Any, directory: Path = MENUS, *, now_ms: Callable[[], int] | None = None,
               per_hour: int = PER_HOUR) -> list[Applied]:
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


async def run(settings: Settings) -> int:
    """`python -m bot richmenu`: prints one line per menu."""
    from bot.infra.metrics import Metrics
    from bot.services import open_redis

    # Without REDIS_URL, never the server's data directory: a second redis-server on the same append-only
    # file (with `serve` running) would corrupt it. The counter and ids are then kept apart.
    async with open_redis(settings, embedded_dir="richmenu") as redis:
        line = LineClient(settings, Metrics())
        try:
            for applied in await sync(line, redis):
                what = "created" if applied.created else "unchanged"
                gone = f", deleted {len(applied.deleted)} old" if applied.deleted else ""
                print(f"{applied.alias}: {what} ({applied.rich_menu_id}){gone}", flush=True)
        finally:
            await line.close()
    return 0
