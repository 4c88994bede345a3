"""`python -m bot dev` / `make run`: embedded Redis, the bot and the LINE simulator console, all on loopback."""
from __future__ import annotations

import secrets
from collections.abc import Mapping

from aiohttp import web

from bot.app import create_app
from bot.config import Settings
from bot.infra.signals import until_stopped
from bot.web.listen import listening_socket
from bot.web.server import Site
from linesim.platform import LIFF_ID, LOGIN_CHANNEL_ID, Platform
from linesim.shopify import DEV_WEBHOOK_SECRET
from linesim.shopify_admin import ShopifyAdminStandIn

DEV_SECRET = "shokai-dev-channel-secret"
DEV_TOKEN = "shokai-dev-access-token"
DEV_BASIC_ID = "@shokai-dev"
DEV_SHOPIFY_SHOP = "shokai-dev.myshopify.com"
DEV_SHOPIFY_TOKEN = "shpat_shokai_dev"
SIMULATOR_SDK_PATH = "/static/liff-sdk.js"  # the stand-in LIFF SDK, on the console's origin


def dev_liff(environment: Mapping[str, str]) -> dict[str, str]:
    """The simulator's LIFF app, so that `make run` plays invites through LIFF: its ID and LINE Login channel,
    unless LIFF_ID is given (an empty LIFF_ID keeps the plain invite pages, as without LIFF)."""
    if "LIFF_ID" in environment:
        return {}
    return {"LIFF_ID": LIFF_ID, "LINE_LOGIN_CHANNEL_ID": LOGIN_CHANNEL_ID}


def dev_shopify(environment: Mapping[str, str], admin_url: str) -> dict[str, str]:
    """The Shopify Admin stand-in, so that `make run` can claim a shopify_discount reward, unless SHOPIFY_SHOP is
    given (an empty one: no Shopify, as in production without it)."""
    if "SHOPIFY_SHOP" in environment:
        return {}
    return {"SHOPIFY_SHOP": DEV_SHOPIFY_SHOP, "SHOPIFY_ADMIN_TOKEN": DEV_SHOPIFY_TOKEN, "SHOPIFY_API_BASE_URL": admin_url}


def dev_admin_token(environment: Mapping[str, str]) -> str:
    """ADMIN_TOKEN when given, else a new random one for this run (printed at start-up): a fixed, published
    token would let anything that reaches the port use the admin API."""
    return environment.get("ADMIN_TOKEN") or secrets.token_urlsafe(24)


async def _rich_menus(app: web.Application) -> None:
    """Put the rich menus on the simulator, as `python -m bot richmenu` does on LINE."""
    from bot.app import SERVICES
    from bot.richmenu.spec import RichMenuError
    from bot.richmenu.sync import sync

    services = app[SERVICES]
    try:
        await sync(services.line, services.redis)
    except RichMenuError as exc:
        print(f"  rich menus not set up: {exc}", flush=True)


DEV_OWNER = "owner@example.com"


async def dev_owner(app: web.Application) -> str:
    """The dashboard's sign-in line for the start-up message: an owner account with a random password made
    now when there is no account at all (the password shown once: Redis keeps the account across runs)."""
    from bot.app import SERVICES
    from bot.web.dashboard.accounts import StaffAccounts

    services = app[SERVICES]
    accounts = StaffAccounts(services.redis, services.program.now_ms)
    if await accounts.count() == 0:
        password = secrets.token_urlsafe(12)
        await accounts.add(DEV_OWNER, "owner", password)
        return f"sign in as {DEV_OWNER} / {password}"
    emails = ", ".join(a.email for a in await accounts.list())
    return (f"sign in as one of: {emails} (accounts kept in the data directory; stop and "
            "`python -m bot users reset-password EMAIL` for a new password)")


async def run_dev(host: str, port: int, console_port: int, environment: Mapping[str, str]) -> None:
    from linesim.console_app import SHOP_PATH, console_app  # the console's page and API

    # both ports first: one in use stops start-up with one line before anything was started
    bot_socket = listening_socket(host, port, "--port or PORT")
    try:
        console_socket = listening_socket(host, console_port, "--console-port or CONSOLE_PORT")
    except BaseException:
        bot_socket.close()
        raise
    port, console_port = bot_socket.getsockname()[1], console_socket.getsockname()[1]
    public = environment.get("PUBLIC_BASE_URL") or f"http://{host}:{port}"
    admin_token = dev_admin_token(environment)
    platform = Platform(secret=DEV_SECRET, token=DEV_TOKEN, basic_id=DEV_BASIC_ID, strict_media=False,
                        bot_url=f"http://{host}:{port}/callback")
    await platform.start()
    shopify = ShopifyAdminStandIn(token=DEV_SHOPIFY_TOKEN)
    await shopify.start(host)
    # the account link story: the console stands in for the shop's login page unless a real one is given
    shop_link_url = environment.get("SHOP_LINK_URL") or f"http://{host}:{console_port}{SHOP_PATH}"
    env = {**environment, "SHOP_LINK_URL": shop_link_url, "LINE_CHANNEL_SECRET": DEV_SECRET, "LINE_CHANNEL_ACCESS_TOKEN": DEV_TOKEN,
           "LINE_API_BASE_URL": platform.api_url, "PUBLIC_BASE_URL": public, "LINE_BASIC_ID": DEV_BASIC_ID,
           "ADMIN_TOKEN": admin_token, **dev_liff(environment),
           **dev_shopify(environment, shopify.url),
           # the store path: the console's Shopify stand-in signs its webhooks with this secret
           "SHOPIFY_WEBHOOK_SECRET": environment.get("SHOPIFY_WEBHOOK_SECRET") or DEV_WEBHOOK_SECRET}
    console_url = f"http://{host}:{console_port}"
    runners = []
    try:
        # the LIFF page loads the simulator's stand-in SDK, which the console serves (production: LINE's own);
        # the console serves the page from its own origin (its LIFF browser), so a path is enough
        settings = Settings.from_env(env, liff_sdk_url=SIMULATOR_SDK_PATH)
        bot_runner = web.AppRunner(create_app(settings), access_log=None)
        await bot_runner.setup()
        runners.append(bot_runner)
        await Site(bot_runner, bot_socket, header_seconds=settings.header_read_seconds).start()
        await _rich_menus(bot_runner.app)
        sign_in = await dev_owner(bot_runner.app)
        console_runner = web.AppRunner(
            console_app(platform, bot_url=f"http://{host}:{port}", public_base_url=public, admin_token=admin_token,
                        hosts=(host,), liff_id=settings.liff_id, liff_endpoint=f"{public}/liff/invite",
                        shop_link_url=shop_link_url, shopify_secret=settings.shopify_webhook_secret),
            access_log=None)
        await console_runner.setup()
        runners.append(console_runner)
        await web.SockSite(console_runner, console_socket).start()
        print(f"\n  Shokai is running (data in {settings.data_dir}/redis).\n"
              f"  Open the LINE simulator console:  {console_url}/\n"
              f"  Staff dashboard: {public}/admin/   {sign_in}\n"
              f"  Bot webhook: {platform.bot_url}   Admin token: {admin_token}\n"
              + (f"  Shopify Admin stand-in: {shopify.url} (the 特典 / rewards online500 makes its codes there)\n"
                 if settings.shopify_shop == DEV_SHOPIFY_SHOP else ""), flush=True)
        await until_stopped()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        await platform.stop()
        await shopify.stop()
        bot_socket.close()
        console_socket.close()
