"""The LINE stand-in's rich menus: menus, images, the default, aliases and per-user links, checked as LINE does.

Requests are checked against the SDK's models (generated from LINE's OpenAPI spec) and the documented limits
the spec leaves out: size 800–2500 wide, ≥ 250 high, width/height ≥ 1.45; 1–20 areas inside the image;
chatBarText ≤ 14; action labels ≤ 20; images PNG or JPEG, ≤ 1 MB, exactly the menu's size, uploaded once;
an image before the menu is made default, aliased or linked; 100 creations (and deletions) an hour.
A mistake is answered as LINE would and listed in the platform's violations.
"""
from __future__ import annotations

import io
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from linebot.v3.messaging import (
    CreateRichMenuAliasRequest,
    RichMenuBulkLinkRequest,
    RichMenuBulkUnlinkRequest,
    RichMenuRequest,
    UpdateRichMenuAliasRequest,
)
from PIL import Image

from bot.line.limits import (
    CHAT_BAR_TEXT_MAX,
    MESSAGE_ACTION_TEXT_MAX,
    POSTBACK_DATA_MAX,
    RICH_MENU_AREAS_MAX,
    RICH_MENU_CALLS_PER_HOUR,
    RICH_MENU_HEIGHT_MIN,
    RICH_MENU_IMAGE_MAX_BYTES,
    RICH_MENU_LABEL_MAX,
    RICH_MENU_NAME_MAX,
    RICH_MENU_RATIO_MIN,
    RICH_MENU_WIDTH_MAX,
    RICH_MENU_WIDTH_MIN,
    RICH_MENUS_MAX,
)

if TYPE_CHECKING:
    from linesim.platform import Platform



@dataclass
class RichMenuStore:
    platform: Platform
    menus: dict[str, dict] = field(default_factory=dict)  # id → the rich menu object (with richMenuId)
    images: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # id → (bytes, content type)
    default_id: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)  # alias → id
    links: dict[str, str] = field(default_factory=dict)  # user → id
    hourly: dict[str, list[float]] = field(default_factory=dict)  # endpoint → call times (platform clock)

    def add_routes(self, r: web.UrlDispatcher) -> None:
        # specific paths first: aiohttp matches in the order routes were added
        r.add_post("/v2/bot/richmenu", self._create)
        r.add_post("/v2/bot/richmenu/validate", self._validate)
        r.add_get("/v2/bot/richmenu/list", self._list)
        r.add_post("/v2/bot/richmenu/alias", self._alias_create)
        r.add_get("/v2/bot/richmenu/alias/list", self._alias_list)
        r.add_route("*", "/v2/bot/richmenu/alias/{alias}", self._alias)
        r.add_post("/v2/bot/richmenu/bulk/link", self._bulk_link)
        r.add_post("/v2/bot/richmenu/bulk/unlink", self._bulk_unlink)
        r.add_route("*", "/v2/bot/richmenu/{id}/content", self._content)
        r.add_route("*", "/v2/bot/richmenu/{id}", self._menu)
        r.add_route("*", "/v2/bot/user/all/richmenu", self._default)
        r.add_post("/v2/bot/user/all/richmenu/{id}", self._set_default)
        r.add_route("*", "/v2/bot/user/{user_id}/richmenu", self._user)
        r.add_post("/v2/bot/user/{user_id}/richmenu/{id}", self._link)

    # ---- what tests and the console read ------------------------------------------------
    def menu_for(self, user_id: str) -> dict | None:
        """The rich menu this user sees: their own link, else the default."""
        menu_id = self.links.get(user_id) or self.default_id
        return self.menus.get(menu_id) if menu_id else None

    def tap(self, user_id: str, index: int) -> dict:
        """The webhook event LINE sends when this user taps area `index` of the menu they see.
        A richmenuswitch first shows the alias's menu, as the LINE app does."""
        menu = self.menu_for(user_id)
        if menu is None:
            raise LookupError(f"{user_id} sees no rich menu")
        if not 0 <= index < len(menu["areas"]):
            raise LookupError(f"the menu has no area {index}")
        action = menu["areas"][index]["action"]
        if action["type"] == "message":
            return self.platform.text(user_id, action["text"])
        if action["type"] == "richmenuswitch":
            alias = action["richMenuAliasId"]
            found = alias in self.aliases
            if found:
                self.links[user_id] = self.aliases[alias]
            return self.platform.event("postback", user_id, postback={
                "data": action["data"],
                "params": {"newRichMenuAliasId": alias, "status": "SUCCESS" if found else "RICHMENU_ALIAS_ID_NOTFOUND"}})
        if action["type"] == "postback":
            return self.platform.postback(user_id, action["data"])
        raise ValueError(f"a {action['type']} area sends no webhook event")

    def calls(self, endpoint: str) -> int:
        return sum(1 for c in self.platform.calls if c.endpoint == f"richmenu.{endpoint}" and c.status == 200)

    # ---- plumbing ------------------------------------------------------------------------
    def _answer(self, request: web.Request, endpoint: str, status: int, payload: dict,
                body: Any = None, violation: str | None = None) -> web.Response:
        from linesim.platform import Call

        if violation:
            self.platform._violation(f"richmenu.{endpoint}: {violation}")
        record = body if isinstance(body, dict) else {"path": request.path}
        self.platform._record(Call(f"richmenu.{endpoint}", record, dict(request.headers), status,
                                   self.platform.clock()))
        return web.json_response(payload, status=status)

    def _refuse(self, request: web.Request, endpoint: str, problem: str, body: Any = None,
                status: int = 400) -> web.Response:
        return self._answer(request, endpoint, status, {"message": problem}, body, violation=problem)

    def _over_hourly_limit(self, endpoint: str) -> bool:
        now = self.platform.clock()
        recent = [t for t in self.hourly.get(endpoint, []) if now - t < 3600]
        if len(recent) >= RICH_MENU_CALLS_PER_HOUR:
            self.hourly[endpoint] = recent
            return True
        self.hourly[endpoint] = recent + [now]
        return False

    async def _auth(self, request: web.Request, endpoint: str) -> tuple[Any, web.Response | None]:
        body, error = await self.platform._authorized_json(request, f"richmenu.{endpoint}")
        return body, error

    def _menu_problem(self, body: Any) -> str | None:
        """What LINE would refuse in a rich menu object (the SDK's model, then the documented limits)."""
        if not isinstance(body, dict):
            return "the rich menu object is not a JSON object"
        missing = [k for k in ("size", "selected", "name", "chatBarText", "areas") if k not in body]
        if missing:
            return f"rich menu object lacks {missing}"
        try:
            RichMenuRequest.from_dict(body)
        except (ValueError, TypeError) as exc:
            return f"rich menu object does not match LINE's schema: {exc}"
        width, height = body["size"].get("width", 0), body["size"].get("height", 0)
        if not (RICH_MENU_WIDTH_MIN <= width <= RICH_MENU_WIDTH_MAX and height >= RICH_MENU_HEIGHT_MIN
                and width / height >= RICH_MENU_RATIO_MIN):
            return (f"size {width}×{height}: width {RICH_MENU_WIDTH_MIN}–{RICH_MENU_WIDTH_MAX}, "
                    f"height ≥ {RICH_MENU_HEIGHT_MIN}, width/height ≥ {RICH_MENU_RATIO_MIN}")
        if not 1 <= len(body["chatBarText"]) <= CHAT_BAR_TEXT_MAX:
            return f"chatBarText must be 1–{CHAT_BAR_TEXT_MAX} characters"
        if not 1 <= len(body["name"]) <= RICH_MENU_NAME_MAX:
            return f"name must be 1–{RICH_MENU_NAME_MAX} characters"
        areas = body["areas"]
        if not 1 <= len(areas) <= RICH_MENU_AREAS_MAX:
            return f"{len(areas)} areas: a rich menu has 1–{RICH_MENU_AREAS_MAX}"
        for n, area in enumerate(areas):
            b, action = area.get("bounds", {}), area.get("action", {})
            x, y, w, h = (b.get(k, -1) for k in ("x", "y", "width", "height"))
            if x < 0 or y < 0 or w < 1 or h < 1 or x + w > width or y + h > height:
                return f"areas[{n}].bounds {b} are outside the {width}×{height} menu"
            if len(action.get("label", "")) > RICH_MENU_LABEL_MAX:
                return f"areas[{n}].action.label longer than {RICH_MENU_LABEL_MAX}"
            if action.get("type") == "message" and not 1 <= len(action.get("text", "")) <= MESSAGE_ACTION_TEXT_MAX:
                return f"areas[{n}].action.text must be 1–{MESSAGE_ACTION_TEXT_MAX} characters"
            if action.get("type") == "postback" and len(action.get("data", "")) > POSTBACK_DATA_MAX:
                return f"areas[{n}].action.data longer than {POSTBACK_DATA_MAX}"
            if action.get("type") == "richmenuswitch" and not (
                    action.get("richMenuAliasId") and 1 <= len(action.get("data", "")) <= POSTBACK_DATA_MAX):
                return f"areas[{n}]: a richmenuswitch action needs richMenuAliasId and data (≤ {POSTBACK_DATA_MAX})"
        return None

    def _usable(self, menu_id: str) -> str | None:
        if menu_id not in self.menus:
            return "richmenu not found"
        if menu_id not in self.images:
            return "must upload richmenu image before applying it to user"
        return None

    # ---- menus ---------------------------------------------------------------------------
    async def _create(self, request: web.Request) -> web.Response:
        body, error = await self._auth(request, "create")
        if error:
            return error
        problem = self._menu_problem(body)
        if problem:
            return self._refuse(request, "create", problem, body)
        if len(self.menus) >= RICH_MENUS_MAX:
            return self._refuse(request, "create", f"a channel has at most {RICH_MENUS_MAX} rich menus", body)
        if self._over_hourly_limit("create"):
            return self._refuse(request, "create", "Too Many Requests (100 rich menus an hour)", body, 429)
        menu_id = "richmenu-" + secrets.token_hex(16)
        self.menus[menu_id] = {"richMenuId": menu_id, **body}
        return self._answer(request, "create", 200, {"richMenuId": menu_id}, body)

    async def _validate(self, request: web.Request) -> web.Response:
        body, error = await self._auth(request, "validate")
        if error:
            return error
        problem = self._menu_problem(body)
        if problem:  # asking is not a mistake: LINE just says what is wrong
            return self._answer(request, "validate", 400, {"message": problem}, body)
        return self._answer(request, "validate", 200, {}, body)

    async def _list(self, request: web.Request) -> web.Response:
        _, error = await self._auth(request, "list")
        if error:
            return error
        return self._answer(request, "list", 200, {"richmenus": list(self.menus.values())})

    async def _menu(self, request: web.Request) -> web.Response:
        _, error = await self._auth(request, "menu")
        if error:
            return error
        menu_id = request.match_info["id"]
        if menu_id not in self.menus:
            return self._answer(request, "get" if request.method == "GET" else "delete", 404,
                                {"message": "richmenu not found"})
        if request.method == "GET":
            return self._answer(request, "get", 200, self.menus[menu_id])
        if request.method != "DELETE":
            return self._refuse(request, "menu", f"{request.method} is not allowed here", status=405)
        if self._over_hourly_limit("delete"):
            return self._refuse(request, "delete", "Too Many Requests (100 deletions an hour)", status=429)
        del self.menus[menu_id]
        self.images.pop(menu_id, None)
        if self.default_id == menu_id:
            self.default_id = None
        self.links = {u: m for u, m in self.links.items() if m != menu_id}
        self.aliases = {a: m for a, m in self.aliases.items() if m != menu_id}
        return self._answer(request, "delete", 200, {}, {"richMenuId": menu_id})

    async def _content(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.platform.token}":
            return self._refuse(request, "image", "missing or wrong channel access token", status=401)
        menu_id = request.match_info["id"]
        menu = self.menus.get(menu_id)
        if request.method == "GET":
            if menu_id not in self.images:
                return self._answer(request, "image.get", 404, {"message": "Not found"})
            data, content_type = self.images[menu_id]
            return web.Response(body=data, content_type=content_type)
        if menu is None:
            return self._refuse(request, "image", "richmenu not found", status=404)
        content_type = request.content_type
        data = await request.read()
        record = {"richMenuId": menu_id, "contentType": content_type, "bytes": len(data)}
        if menu_id in self.images:
            return self._refuse(request, "image", "An image has already been uploaded to the richmenu", record)
        if content_type not in ("image/png", "image/jpeg"):
            return self._refuse(request, "image", f"Content-Type must be image/png or image/jpeg, not {content_type}", record)
        if len(data) > RICH_MENU_IMAGE_MAX_BYTES:
            return self._refuse(request, "image", f"image of {len(data):,} bytes: at most 1 MB", record, 413)
        try:
            with Image.open(io.BytesIO(data)) as image:
                kind, size = image.format, image.size
        except OSError:
            return self._refuse(request, "image", "the body is not an image", record)
        if kind != {"image/png": "PNG", "image/jpeg": "JPEG"}[content_type]:
            return self._refuse(request, "image", f"a {kind} image sent as {content_type}", record)
        wanted = (menu["size"]["width"], menu["size"]["height"])
        if size != wanted:
            return self._refuse(request, "image", f"image is {size[0]}×{size[1]}, the menu {wanted[0]}×{wanted[1]}", record)
        self.images[menu_id] = (data, content_type)
        return self._answer(request, "image", 200, {}, record)

    # ---- the default ---------------------------------------------------------------------
    async def _default(self, request: web.Request) -> web.Response:
        _, error = await self._auth(request, "default")
        if error:
            return error
        if request.method == "DELETE":
            self.default_id = None
            return self._answer(request, "default.cancel", 200, {})
        if self.default_id is None:
            return self._answer(request, "default.get", 404, {"message": "no default richmenu"})
        return self._answer(request, "default.get", 200, {"richMenuId": self.default_id})

    async def _set_default(self, request: web.Request) -> web.Response:
        _, error = await self._auth(request, "default")
        if error:
            return error
        menu_id = request.match_info["id"]
        problem = self._usable(menu_id)
        if problem:
            return self._refuse(request, "default", problem, {"richMenuId": menu_id})
        self.default_id = menu_id
        return self._answer(request, "default", 200, {}, {"richMenuId": menu_id})

    # ---- aliases -------------------------------------------------------------------------
    async def _alias_create(self, request: web.Request) -> web.Response:
        body, error = await self._auth(request, "alias.create")
        if error:
            return error
        try:
            CreateRichMenuAliasRequest.from_dict(body)
        except (ValueError, TypeError) as exc:
            return self._refuse(request, "alias.create", f"does not match LINE's schema: {exc}", body)
        alias, menu_id = body["richMenuAliasId"], body["richMenuId"]
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", alias):
            return self._refuse(request, "alias.create", f"bad richMenuAliasId {alias!r}", body)
        if alias in self.aliases:
            return self._refuse(request, "alias.create", "conflict richmenu alias id", body)
        problem = self._usable(menu_id)
        if problem:
            return self._refuse(request, "alias.create", problem, body)
        self.aliases[alias] = menu_id
        return self._answer(request, "alias.create", 200, {}, body)

    async def _alias_list(self, request: web.Request) -> web.Response:
        _, error = await self._auth(request, "alias.list")
        if error:
            return error
        return self._answer(request, "alias.list", 200, {"aliases": [
            {"richMenuAliasId": a, "richMenuId": m} for a, m in self.aliases.items()]})

    async def _alias(self, request: web.Request) -> web.Response:
        body, error = await self._auth(request, "alias")
        if error:
            return error
        alias = request.match_info["alias"]
        if alias not in self.aliases:
            # asking for an alias that is not there is ordinary; changing one is a mistake
            if request.method == "GET":
                return self._answer(request, "alias.get", 404, {"message": "richmenu alias not found"})
            return self._refuse(request, "alias", "richmenu alias not found", status=400)
        if request.method == "GET":
            return self._answer(request, "alias.get", 200, {"richMenuAliasId": alias, "richMenuId": self.aliases[alias]})
        if request.method == "DELETE":
            if self._over_hourly_limit("alias.delete"):
                return self._refuse(request, "alias.delete", "Too Many Requests", status=429)
            del self.aliases[alias]
            return self._answer(request, "alias.delete", 200, {})
        try:
            UpdateRichMenuAliasRequest.from_dict(body)
        except (ValueError, TypeError) as exc:
            return self._refuse(request, "alias.update", f"does not match LINE's schema: {exc}", body)
        problem = self._usable(body["richMenuId"])
        if problem:
            return self._refuse(request, "alias.update", problem, body)
        self.aliases[alias] = body["richMenuId"]
        return self._answer(request, "alias.update", 200, {}, {"richMenuAliasId": alias, **body})

    # ---- per-user links ------------------------------------------------------------------
    @staticmethod
    def _user_id_ok(user_id: str) -> bool:
        return bool(re.fullmatch(r"U[0-9a-f]{32}", user_id))

    async def _user(self, request: web.Request) -> web.Response:
        _, error = await self._auth(request, "user")
        if error:
            return error
        user_id = request.match_info["user_id"]
        if not self._user_id_ok(user_id):
            return self._refuse(request, "user", f"bad user id {user_id!r}")
        if request.method == "DELETE":
            self.links.pop(user_id, None)
            return self._answer(request, "unlink", 200, {}, {"userId": user_id})
        if user_id not in self.links:
            return self._answer(request, "user.get", 404, {"message": "the user has no richmenu"})
        return self._answer(request, "user.get", 200, {"richMenuId": self.links[user_id]})

    async def _link(self, request: web.Request) -> web.Response:
        _, error = await self._auth(request, "link")
        if error:
            return error
        user_id, menu_id = request.match_info["user_id"], request.match_info["id"]
        record = {"userId": user_id, "richMenuId": menu_id}
        if not self._user_id_ok(user_id):
            return self._refuse(request, "link", f"bad user id {user_id!r}", record)
        problem = self._usable(menu_id)
        if problem:
            return self._refuse(request, "link", problem, record)
        self.links[user_id] = menu_id
        return self._answer(request, "link", 200, {}, record)

    async def _bulk_link(self, request: web.Request) -> web.Response:
        body, error = await self._auth(request, "bulk.link")
        if error:
            return error
        try:
            RichMenuBulkLinkRequest.from_dict(body)
        except (ValueError, TypeError) as exc:
            return self._refuse(request, "bulk.link", f"does not match LINE's schema: {exc}", body)
        problem = self._usable(body["richMenuId"])
        if problem:
            return self._refuse(request, "bulk.link", problem, body)
        for user_id in body["userIds"]:
            self.links[user_id] = body["richMenuId"]
        return self._answer(request, "bulk.link", 202, {}, body)

    async def _bulk_unlink(self, request: web.Request) -> web.Response:
        body, error = await self._auth(request, "bulk.unlink")
        if error:
            return error
        try:
            RichMenuBulkUnlinkRequest.from_dict(body)
        except (ValueError, TypeError) as exc:
            return self._refuse(request, "bulk.unlink", f"does not match LINE's schema: {exc}", body)
        for user_id in body["userIds"]:
            self.links.pop(user_id, None)
        return self._answer(request, "bulk.unlink", 202, {}, body)
