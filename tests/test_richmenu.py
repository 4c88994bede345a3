"""Rich menus: `python -m bot richmenu` against the LINE stand-in, which checks every menu, image and link."""
from __future__ import annotations

import asyncio
import inspect
import io
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientSession
from linebot.v3.webhooks import Event
from PIL import Image

from bot.__main__ import main
from bot.infra import keys
from bot.infra.metrics import Metrics
from bot.infra.redis_conn import connect
from bot.line.client import LineClient
from bot.line.limits import RICH_MENU_CALLS_PER_HOUR, RICH_MENU_IMAGE_MAX_BYTES
from bot.richmenu import image as richmenu_image
from bot.richmenu import sync as richmenu
from bot.richmenu.spec import CUSTOMER_ALIAS, MENUS, STAFF_ALIAS, RichMenuError, load_menu, load_menus
from bot.richmenu.staff import is_staff_menu_user, link_staff_menu, unlink_staff_menu
from bot.richmenu.sync import RichMenus, TooManyCalls, sync
from linesim.platform import Platform, new_user_id, text_of
from tests.support.harness import TOKEN, Bot, converse, make_settings

CUSTOMER_TEXTS = ["招待", "ポイント", "特典", "紹介状況", "クーポン", "ヘルプ"]
STAFF_TEXTS = ["配信する", "今日の数字", "会員を探す", "クーポン使用", "審査待ち"]
STAFF = new_user_id()


class Clock:
    """The time the rate counter sees, moved by the test (no wall clock)."""

    def __init__(self) -> None:
        self.ms = 1_800_000_000_000

    def __call__(self) -> int:
        return self.ms


@pytest_asyncio.fixture
async def line(clean_redis: str, platform: Platform) -> AsyncIterator[tuple[LineClient, object]]:
    settings = make_settings(clean_redis, platform, staff_user_ids=frozenset({STAFF}))
    client = LineClient(settings, Metrics())
    redis = connect(clean_redis, False)
    yield client, redis
    await client.close()
    await redis.aclose()


@pytest.fixture
def menus_dir(tmp_path: Path) -> Path:
    """A copy of assets/richmenu that a test may edit."""
    target = tmp_path / "richmenu"
    shutil.copytree(MENUS, target)
    return target


async def test_first_run_creates_uploads_sets_default_and_links_staff(line, platform: Platform) -> None:
    client, redis = line
    applied = {a.alias: a for a in await sync(client, redis)}
    menus = platform.richmenus
    assert set(applied) == {"shokai-customer", "shokai-staff"} and all(a.created for a in applied.values())
    customer, staff = applied["shokai-customer"].rich_menu_id, applied["shokai-staff"].rich_menu_id
    assert menus.calls("create") == 2 and menus.calls("image") == 2
    assert set(menus.images) == {customer, staff}
    assert menus.default_id == customer
    assert menus.aliases == {"shokai-customer": customer, "shokai-staff": staff}
    assert menus.links == {STAFF: staff}
    assert menus.menu_for(new_user_id())["richMenuId"] == customer  # everyone else sees the default
    sent = [a["action"] for a in menus.menus[customer]["areas"]]
    assert [a["text"] for a in sent] == CUSTOMER_TEXTS and {a["type"] for a in sent} == {"message"}
    assert len(menus.menus[customer]["chatBarText"]) <= 14
    staff_actions = [a["action"] for a in menus.menus[staff]["areas"]]
    assert [a["text"] for a in staff_actions if a["type"] == "message"] == STAFF_TEXTS
    switch = [a for a in staff_actions if a["type"] == "richmenuswitch"]
    assert [(a["label"], a["richMenuAliasId"]) for a in switch] == [("お客さまメニュー", "shokai-customer")]
    assert not platform.violations


async def test_second_run_creates_nothing(line, platform: Platform) -> None:
    client, redis = line
    first = await sync(client, redis)
    second = await sync(client, redis)
    assert [a.rich_menu_id for a in second] == [a.rich_menu_id for a in first]
    assert not any(a.created or a.deleted for a in second)
    menus = platform.richmenus
    assert menus.calls("create") == 2 and menus.calls("image") == 2 and menus.calls("delete") == 0
    assert menus.calls("default") == 1 and menus.calls("alias.create") == 2 and menus.calls("alias.update") == 0
    assert len(menus.menus) == 2
    assert not platform.violations


async def test_a_label_change_recreates_the_menu_and_deletes_the_old(line, platform: Platform, menus_dir: Path) -> None:
    client, redis = line
    before = {a.alias: a.rich_menu_id for a in await sync(client, redis, menus_dir)}
    customer = menus_dir / "customer.toml"
    customer.write_text(customer.read_text(encoding="utf-8").replace('en = "Invite"', 'en = "Invite friends"'),
                        encoding="utf-8")
    staff = menus_dir / "staff.toml"
    staff.write_text(staff.read_text(encoding="utf-8").replace('ja = "審査待ち"', 'ja = "審査"'), encoding="utf-8")
    after = {a.alias: a for a in await sync(client, redis, menus_dir)}
    menus = platform.richmenus
    for alias in ("shokai-customer", "shokai-staff"):
        assert after[alias].created and after[alias].deleted == [before[alias]]
        assert after[alias].rich_menu_id != before[alias] and before[alias] not in menus.menus
        assert menus.aliases[alias] == after[alias].rich_menu_id
    assert menus.default_id == after["shokai-customer"].rich_menu_id
    assert menus.links[STAFF] == after["shokai-staff"].rich_menu_id  # staff follow the new staff menu
    assert len(menus.menus) == 2 and menus.calls("create") == 4 and menus.calls("delete") == 2
    assert not platform.violations


async def test_a_leftover_of_a_run_that_stopped_half_way_is_replaced(line, platform: Platform) -> None:
    """A menu with the right hash that no alias points to may lack its image: made again, the leftover deleted."""
    client, redis = line
    first = {a.alias: a.rich_menu_id for a in await sync(client, redis)}
    platform.richmenus.aliases.pop("shokai-staff")  # as if the run had stopped before moving the alias
    again = {a.alias: a for a in await sync(client, redis)}
    assert not again["shokai-customer"].created
    assert again["shokai-staff"].created and again["shokai-staff"].deleted == [first["shokai-staff"]]
    assert not platform.violations


async def test_the_hourly_creation_limit_is_refused_before_line_is_asked(line, platform: Platform) -> None:
    client, redis = line
    clock = Clock()
    counter = RichMenus(client, redis, now_ms=clock)
    for _ in range(RICH_MENU_CALLS_PER_HOUR):
        await counter._take("create")
    await counter.close()
    with pytest.raises(TooManyCalls, match="100 rich menu creates an hour") as refused:
        await sync(client, redis, now_ms=clock)
    assert "try again after" in str(refused.value)
    assert platform.richmenus.menus == {} and platform.richmenus.calls("create") == 0
    clock.ms += 3_600_001  # an hour later the window is free again
    assert len(await sync(client, redis, now_ms=clock)) == 2
    assert not platform.violations


@pytest.mark.parametrize("change, complaint", [
    (('chat_bar_text = "メニュー"', 'chat_bar_text = "とても長いチャットバーのテキストです"'), "chat_bar_text"),
    (("width = 2500", "width = 3000"), "size 3000×1686"),
    (("height = 1686", "height = 2000"), "width/height"),
    (('text = "招待"', 'text = "招待"\nbounds = [2000, 0, 1000, 100]'), "do not fit"),
    (('ja = "ヘルプ"', 'ja = "ヘルプとお問い合わせとよくある質問とその他"'), "ja (the label)"),
    (('alias = "shokai-customer"', 'alias = "shokai customer!"'), "alias"),
])
def test_menu_files_beyond_line_limits_are_refused_clearly(menus_dir: Path, change: tuple[str, str],
                                                            complaint: str) -> None:
    path = menus_dir / "customer.toml"
    path.write_text(path.read_text(encoding="utf-8").replace(*change, 1), encoding="utf-8")
    with pytest.raises(RichMenuError, match="customer.toml") as refused:
        load_menu(path)
    assert complaint in str(refused.value)


def test_more_than_twenty_areas_are_refused(menus_dir: Path) -> None:
    path = menus_dir / "customer.toml"
    extra = "".join(f'\n[[areas]]\nja = "A{n}"\nen = "A"\ntext = "a"\nbounds = [0, 0, 10, 10]\n' for n in range(15))
    path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")
    with pytest.raises(RichMenuError, match="21 areas; LINE allows 1–20"):
        load_menu(path)


def test_generated_images_are_png_of_the_menus_size_under_1_mb() -> None:
    for menu in load_menus():
        data, content_type = richmenu_image.render_image(menu)
        assert content_type == "image/png" and len(data) <= RICH_MENU_IMAGE_MAX_BYTES
        with Image.open(io.BytesIO(data)) as image:
            assert (image.format, image.size) == ("PNG", (menu.width, menu.height))
            # the brand colour is what the image is drawn in
            assert image.convert("RGB").getpixel((menu.width // 6, 10)) == menu.colour


def test_a_japanese_font_is_found_or_the_default_is_used_with_a_warning(monkeypatch, caplog) -> None:
    menu = load_menus()[0]
    monkeypatch.setattr(richmenu_image, "find_cjk_font", lambda: None)
    data, _ = richmenu_image.render_image(menu)
    assert "no Japanese font found" in caplog.text
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (menu.width, menu.height)


async def test_a_given_jpeg_is_uploaded_as_is_and_a_wrong_one_refused(line, platform: Platform, menus_dir: Path) -> None:
    client, redis = line
    buffer = io.BytesIO()
    Image.new("RGB", (2500, 1686), (200, 30, 60)).save(buffer, format="JPEG", quality=80)
    (menus_dir / "customer.jpg").write_bytes(buffer.getvalue())
    applied = {a.alias: a.rich_menu_id for a in await sync(client, redis, menus_dir)}
    assert platform.richmenus.images[applied["shokai-customer"]] == (buffer.getvalue(), "image/jpeg")
    buffer = io.BytesIO()
    Image.new("RGB", (2500, 843), (200, 30, 60)).save(buffer, format="JPEG")
    (menus_dir / "customer.jpg").write_bytes(buffer.getvalue())
    with pytest.raises(RichMenuError, match="customer.jpg is 2500×843; the menu is 2500×1686"):
        await sync(client, redis, menus_dir)
    assert not platform.violations


async def test_the_stand_in_refuses_what_line_refuses(platform: Platform) -> None:
    """Without the bot's own checks, LINE (the stand-in) says no, and the test would fail on its violations."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    good = {"size": {"width": 2500, "height": 843}, "selected": False, "name": "m", "chatBarText": "メニュー",
            "areas": [{"bounds": {"x": 0, "y": 0, "width": 2500, "height": 843},
                       "action": {"type": "message", "label": "ヘルプ", "text": "ヘルプ"}}]}
    async with ClientSession() as http:
        async def post(path: str, **kw: object) -> int:
            async with http.post(platform.api_url + path, headers={**auth, **kw.pop("headers", {})}, **kw) as r:
                return r.status

        assert await post("/v2/bot/richmenu", json={**good, "chatBarText": "x" * 15}) == 400
        assert await post("/v2/bot/richmenu", json={**good, "areas": good["areas"] * 21}) == 400
        outside = [{**good["areas"][0], "bounds": {"x": 100, "y": 0, "width": 2500, "height": 843}}]
        assert await post("/v2/bot/richmenu", json={**good, "areas": outside}) == 400
        async with http.post(platform.api_url + "/v2/bot/richmenu", json=good, headers=auth) as r:
            menu_id = (await r.json())["richMenuId"]
        assert await post(f"/v2/bot/user/all/richmenu/{menu_id}") == 400  # no image yet
        small = io.BytesIO()
        Image.new("RGB", (800, 270)).save(small, format="PNG")
        png = {"Content-Type": "image/png"}
        assert await post(f"/v2/bot/richmenu/{menu_id}/content", data=small.getvalue(), headers=png) == 400
        assert await post(f"/v2/bot/richmenu/{menu_id}/content", data=small.getvalue(),
                          headers={"Content-Type": "image/gif"}) == 400
        assert await post(f"/v2/bot/richmenu/{menu_id}/content", data=b"\0" * (1024 * 1024 + 1), headers=png) == 413
        right = io.BytesIO()
        Image.new("RGB", (2500, 843)).save(right, format="PNG")
        assert await post(f"/v2/bot/richmenu/{menu_id}/content", data=right.getvalue(), headers=png) == 200
        assert await post(f"/v2/bot/richmenu/{menu_id}/content", data=right.getvalue(), headers=png) == 400
        assert await post(f"/v2/bot/user/all/richmenu/{menu_id}") == 200
    assert len(platform.violations) == 8
    assert any("chatBarText" in v for v in platform.violations)
    assert any("21 areas" in v for v in platform.violations)
    assert any("image is 800×270" in v for v in platform.violations)
    assert any("already been uploaded" in v for v in platform.violations)
    platform.violations.clear()


async def test_staff_menu_linked_and_unlinked_one_user_at_a_time(line, platform: Platform) -> None:
    client, redis = line
    newcomer = new_user_id()
    assert not await link_staff_menu(client, redis, newcomer)  # no staff menu yet: remembered
    applied = {a.alias: a.rich_menu_id for a in await sync(client, redis)}
    menus = platform.richmenus
    assert menus.links == {STAFF: applied["shokai-staff"], newcomer: applied["shokai-staff"]}
    other = new_user_id()
    assert await link_staff_menu(client, redis, other)
    assert menus.menu_for(other)["richMenuId"] == applied["shokai-staff"]
    await unlink_staff_menu(client, redis, other)
    assert menus.menu_for(other)["richMenuId"] == applied["shokai-customer"]
    assert not await is_staff_menu_user(redis, other)
    await redis.flushdb()  # Redis lost: LINE's alias still finds the staff menu
    assert await link_staff_menu(client, redis, other)
    assert not platform.violations


async def test_the_command_line(clean_redis: str, platform: Platform, monkeypatch, capsys) -> None:
    for name, value in {"LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
                        "PUBLIC_BASE_URL": "https://shop.example.test", "LINE_API_BASE_URL": platform.api_url,
                        "REDIS_URL": clean_redis, "STAFF_USER_IDS": STAFF}.items():
        monkeypatch.setenv(name, value)
    assert await asyncio.to_thread(main, ["richmenu"]) == 0
    assert await asyncio.to_thread(main, ["richmenu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] + ": " + line.split()[1] for line in out] == [
        "shokai-customer: created", "shokai-staff: created", "shokai-customer: unchanged", "shokai-staff: unchanged"]
    assert platform.richmenus.links[STAFF] == platform.richmenus.aliases["shokai-staff"]
    assert not platform.violations


def test_rich_menu_image_goes_to_the_data_api() -> None:
    from bot.config import Settings

    real = Settings(channel_secret="s", channel_access_token="t", public_base_url="https://x.test")
    assert richmenu.data_api_url(real) == "https://api-data.line.me"
    local = Settings(channel_secret="s", channel_access_token="t", public_base_url="https://x.test",
                     line_api_base_url="http://127.0.0.1:9")
    assert richmenu.data_api_url(local) == "http://127.0.0.1:9"


# ---- every tap leads somewhere -----------------------------------------------------------
async def route_for(ctx: Any) -> Any:
    """The route the dispatcher would take, without running its handler (filters may be async)."""
    from handlers import build_router

    for route in build_router().routes:
        if not isinstance(ctx.event, route.event_type):
            continue
        for check in route.filters:
            result = check(ctx)
            if inspect.isawaitable(result):
                result = await result
            if not result:
                break
        else:
            return route
    raise AssertionError("no route at all")


@pytest.mark.parametrize("text", CUSTOMER_TEXTS)
async def test_every_customer_area_is_routed_to_a_handler_not_the_fallback(bot: Bot, text: str) -> None:
    from bot.chat.context import Ctx

    uid = new_user_id()
    event = Event.from_dict(bot.platform.text(uid, text))
    ctx = Ctx(event=event, user_id=uid, event_id="e", received_at_ms=0, services=bot.services)
    route = await route_for(ctx)
    assert not route.handler.__module__.startswith("handlers.staff"), f"{text!r} reached a staff handler"
    assert route.handler.__module__ != "handlers.fallback", f"{text!r} falls through to the fallback"


def test_staff_menu_sends_the_staff_words() -> None:
    staff = next(m for m in load_menus() if m.alias == STAFF_ALIAS)
    assert [a.text for a in staff.areas if a.text] == STAFF_TEXTS
    assert [a.switch for a in staff.areas if a.switch] == [CUSTOMER_ALIAS]


async def test_staff_switch_to_the_customer_view_and_back(bot: Bot) -> None:
    platform = bot.platform
    services = bot.services
    staff = new_user_id()
    await platform.send(platform.follow(staff))
    await bot.idle()
    applied = {a.alias: a.rich_menu_id for a in await sync(services.line, services.redis)}
    status, _ = await bot.admin("POST", f"/api/v1/staff/{staff}")  # made staff through the API: linked at once
    assert status == 200
    menus = platform.richmenus
    assert menus.menu_for(staff)["richMenuId"] == applied["shokai-staff"]
    switch_at = [a["action"]["type"] for a in menus.menu_for(staff)["areas"]].index("richmenuswitch")
    said = await converse(platform, staff, menus.tap(staff, switch_at))
    assert menus.menu_for(staff)["richMenuId"] == applied["shokai-customer"]
    assert "お客さまと同じメニュー" in said[-1]["text"]
    back = said[-1]["quickReply"]["items"][0]["action"]
    assert back["label"] == "スタッフメニューへ"
    said = await converse(platform, staff, platform.postback(staff, back["data"]))
    assert said[-1]["text"].startswith("スタッフメニューに戻しました")
    assert menus.menu_for(staff)["richMenuId"] == applied["shokai-staff"]
    # a customer tapping the same (forged or stale) button back gets no staff menu
    customer = new_user_id()
    await platform.send(platform.follow(customer))
    said = await converse(platform, customer, platform.postback(customer, back["data"]))
    assert "スタッフ" not in said[-1]["text"] and customer not in menus.links


async def test_a_customer_tap_on_the_menu_gets_its_answer(bot: Bot) -> None:
    platform = bot.platform
    await sync(bot.services.line, bot.services.redis)
    uid = new_user_id()
    await converse(platform, uid, platform.follow(uid))
    said = await converse(platform, uid, platform.richmenus.tap(uid, 1))  # ポイント
    assert said and said[-1]["type"] == "flex" and "ポイント" in said[-1]["altText"]  # the member card


async def test_the_console_shows_the_menu_and_a_tap_sends_its_text(bot: Bot) -> None:
    from aiohttp import web

    from linesim.console_app import console_app

    platform = bot.platform
    await sync(bot.services.line, bot.services.redis)
    runner = web.AppRunner(console_app(platform, bot_url=bot.url, public_base_url=bot.url, admin_token="x"))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    console = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        async with ClientSession() as http:
            async with http.post(console + "/api/customers", json={"name": "佐藤"}) as r:
                uid = (await r.json())["uid"]
            async with http.get(f"{console}/api/customers/{uid}/richmenu") as r:
                assert (await r.json())["menu"] is None  # not a friend yet: no menu
            async with http.post(f"{console}/api/customers/{uid}/follow", json={}) as r:
                assert r.status == 200
            async with http.get(f"{console}/api/customers/{uid}/richmenu") as r:
                menu = (await r.json())["menu"]
            assert menu["chatBarText"] == "メニュー" and [a["label"] for a in menu["areas"]][:2] == ["招待する", "ポイント"]
            async with http.get(console + menu["image"]) as r:
                assert r.content_type == "image/png" and (await r.read()).startswith(b"\x89PNG")
            mark = len(platform.calls)
            async with http.post(f"{console}/api/customers/{uid}/richmenu/1", json={}) as r:
                assert (await r.json())["effect"] == "sent"
            said = await platform.wait_for(lambda: platform.said_to(uid, mark))
            assert "ポイント" in text_of(said)  # the member card
            async with http.post(f"{console}/api/customers/{uid}/richmenu/99", json={}) as r:
                assert r.status == 409 and "no area 99" in (await r.json())["error"]
    finally:
        await runner.cleanup()


async def test_line_out_of_reach_is_one_clear_line(clean_redis: str, platform: Platform) -> None:
    settings = make_settings(clean_redis, platform, line_api_base_url="http://127.0.0.1:9", line_timeout_seconds=2.0)
    client, redis = LineClient(settings, Metrics()), connect(clean_redis, False)
    try:
        with pytest.raises(RichMenuError, match="LINE could not be reached"):
            await sync(client, redis)
        assert await redis.get(keys.RICHMENU_LOCK) is None  # the next run is not blocked
    finally:
        await client.close()
        await redis.aclose()
