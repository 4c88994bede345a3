"""What a rich menu is: assets/richmenu/*.toml read into Menu and Area, checked against LINE's limits.

Each file describes one menu (size, chat bar text, areas as data, brand colour); `Menu.request` is the body
LINE's create-rich-menu endpoint takes. A richmenuswitch area sends MenuSwitched as its postback data.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linebot.v3.messaging import RichMenuRequest

from bot.chat.postback import PostbackData
from bot.config import ASSETS
from bot.line.limits import (
    CHAT_BAR_TEXT_MAX,
    MESSAGE_ACTION_TEXT_MAX,
    RICH_MENU_ALIAS_MAX,
    RICH_MENU_AREAS_MAX,
    RICH_MENU_HEIGHT_MIN,
    RICH_MENU_LABEL_MAX,
    RICH_MENU_RATIO_MIN,
    RICH_MENU_WIDTH_MAX,
    RICH_MENU_WIDTH_MIN,
)

MENUS = ASSETS / "richmenu"
CUSTOMER_ALIAS = "shokai-customer"
STAFF_ALIAS = "shokai-staff"


class RichMenuError(Exception):
    """A menu file, an image or LINE said no: one line that says what and where; nothing half-done is left."""


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
    if not re.fullmatch(rf"[A-Za-z0-9_-]{{1,{RICH_MENU_ALIAS_MAX}}}", alias):
        raise bad(f"alias must be 1–{RICH_MENU_ALIAS_MAX} letters, digits, _ or -: {alias!r}")
    if not 1 <= len(chat_bar) <= CHAT_BAR_TEXT_MAX:
        raise bad(f"chat_bar_text must be 1–{CHAT_BAR_TEXT_MAX} characters, {chat_bar!r} has {len(chat_bar)}")
    if not (RICH_MENU_WIDTH_MIN <= width <= RICH_MENU_WIDTH_MAX and height >= RICH_MENU_HEIGHT_MIN
            and width / height >= RICH_MENU_RATIO_MIN):
        raise bad(f"size {width}×{height}: LINE needs width {RICH_MENU_WIDTH_MIN}–{RICH_MENU_WIDTH_MAX}, "
                  f"height ≥ {RICH_MENU_HEIGHT_MIN}, width/height ≥ {RICH_MENU_RATIO_MIN}")
    if not 1 <= len(raw_areas) <= RICH_MENU_AREAS_MAX:
        raise bad(f"has {len(raw_areas)} areas; LINE allows 1–{RICH_MENU_AREAS_MAX}")
    colour_text = str(data.get("colour", "#06C755"))
    if not re.fullmatch(r"#[0-9A-Fa-f]{6}", colour_text):
        raise bad(f"colour must look like #06C755, got {colour_text!r}")
    colour = (int(colour_text[1:3], 16), int(colour_text[3:5], 16), int(colour_text[5:7], 16))
    columns, rows = int(data.get("columns", 1)), int(data.get("rows", 1))
    areas = []
    for n, raw in enumerate(raw_areas):
        where = f"areas[{n}]"
        ja, en = str(raw.get("ja", "")), str(raw.get("en", ""))
        if not 1 <= len(ja) <= RICH_MENU_LABEL_MAX:
            raise bad(f"{where}.ja (the label) must be 1–{RICH_MENU_LABEL_MAX} characters: {ja!r}")
        if ("text" in raw) == ("switch" in raw):
            raise bad(f"{where} needs exactly one of text (send a message) or switch (another menu's alias)")
        text = str(raw["text"]) if "text" in raw else None
        if text is not None and not 1 <= len(text) <= MESSAGE_ACTION_TEXT_MAX:
            raise bad(f"{where}.text must be 1–{MESSAGE_ACTION_TEXT_MAX} characters")
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
