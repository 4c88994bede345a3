"""Settings: the one place that reads the environment."""
from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from bot.deliveries.targets import refusal as target_refusal
from bot.line.limits import MULTICAST_PER_SECOND

ASSETS = Path(__file__).resolve().parent.parent / "assets"


class ConfigError(Exception):
    """A missing or malformed variable: start-up stops with this one line."""


def process_env() -> Mapping[str, str]:
    """The process's environment. Read here and nowhere else: other modules are handed what they need."""
    return os.environ


REQUIRED = ("LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN", "PUBLIC_BASE_URL")
MAX_FORWARD_URLS = 5  # each one is another delivery per webhook
LIFF_SDK_URL = "https://static.line-scdn.net/liff/edge/2/sdk.js"  # LINE's SDK, its CDN edge path (LIFF v2)


@dataclass(frozen=True)
class CommandLine:
    """What the command line takes from the environment before any Settings exist: its default ports and,
    for `python -m bot dev` (which makes up its own channel), the log level."""

    port: int = 8000
    console_port: int = 8080
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CommandLine:
        env = os.environ if env is None else env
        return cls(port=port_number(env.get("PORT") or "8000", "PORT"),
                   console_port=port_number(env.get("CONSOLE_PORT") or "8080", "CONSOLE_PORT"),
                   log_level=log_level(env.get("LOG_LEVEL") or "INFO"))


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(raw: str) -> str:
    level = raw.upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {raw!r}")
    return level


def whole_number(raw: str, name: str, low: int, high: int, what: str) -> int:
    """A whole number from low to high written in ASCII digits, or a ConfigError naming the variable.

    Not str.isdigit(): it also passes "²" or "١", which int() refuses or reads, and an int() of thousands of
    digits raises too. At most as many digits as `high` has, so nothing long ever reaches int()."""
    if not re.fullmatch(r"[0-9]+", raw) or len(raw.lstrip("0")) > len(str(high)) or not low <= int(raw) <= high:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise ConfigError(f"{name} must be {what}, got {shown!r}")
    return int(raw)


def port_number(raw: str, name: str) -> int:
    return whole_number(raw.strip(), name, 1, 65_535, "a port number from 1 to 65535")


def _number(env: Mapping[str, str], name: str, at_most: float, what: str) -> float:
    """A number above 0 and at most `at_most` (nan, inf and words refused), or a ConfigError naming the variable."""
    raw = env[name]
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value <= at_most:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise ConfigError(f"{name} must be {what}, got {shown!r}")
    return value


@dataclass(frozen=True)
class Settings:
    channel_secret: str
    channel_access_token: str
    public_base_url: str
    line_api_base_url: str = "https://api.line.me"
    redis_url: str | None = None
    redis_cluster: bool = False
    data_dir: Path = Path("./var")
    line_basic_id: str | None = None
    admin_token: str | None = None
    staff_user_ids: frozenset[str] = field(default_factory=frozenset)
    rewards_config: Path = ASSETS / "rules.toml"
    log_level: str = "INFO"
    # LIFF invites (README "Invites through LIFF"): unset, invite links stay plain pages
    liff_id: str | None = None
    line_login_channel_id: str | None = None  # the LINE Login channel whose ID tokens are accepted
    # the LIFF SDK the LIFF page loads: LINE's own in production; `python -m bot dev` points it at the simulator's
    liff_sdk_url: str = LIFF_SDK_URL
    # the shop's login page for LINE's account link (SHOP_LINK_URL): the bot opens it with ?linkToken=… appended.
    # Unset: this shop offers no account link (連携 / link answers so)
    shop_link_url: str | None = None
    # FORWARD_WEBHOOK_URLS: every verified LINE webhook body goes on, unchanged, to each (the shop's other LINE
    # tool; README "Alongside another LINE tool"). Empty: nothing is forwarded
    forward_webhook_urls: tuple[str, ...] = ()
    # Shopify Admin API (README "Spending points at the online shop"): both or neither. Unset: rewards of
    # issue "shopify_discount" are not offered
    shopify_shop: str | None = None  # the shop's myshopify domain, e.g. example.myshopify.com
    shopify_admin_token: str | None = None  # the custom app's Admin API access token (shpat_…)
    shopify_api_base_url: str | None = None  # None: https://{shopify_shop}; tests and the simulator point it home
    shopify_timeout_seconds: float = 10.0
    shopify_retry_attempts: int = 4  # tries of one discount code (5xx, timeouts) before the claim is refunded
    shopify_retry_base_seconds: float = 0.5  # the wait before the second try; doubled before each further one
    # the secret Shopify signs webhooks with (SHOPIFY_WEBHOOK_SECRET; README "Connect your Shopify store").
    # Unset: POST /webhooks/shopify answers 404
    shopify_webhook_secret: str | None = None
    # the staff dashboard (/admin/): a session ends after this many minutes without a request
    # (DASHBOARD_IDLE_MINUTES; README "Staff dashboard")
    dashboard_idle_minutes: int = 30
    # plumbing knobs (not part of the contract; tests shorten them)
    stream_partitions: int = 8
    # how long a worker's leases (partitions, clock, broadcast jobs, its name) last unrenewed; it renews them
    # every third of this, so a crashed worker's partitions are taken over within about 4/3 of it
    # (bot/intake/worker.py), and a lease a live worker holds never lapses while its event loop runs
    lease_ms: int = 3_000
    # the process's name given by the platform (DYNO on Heroku-like platforms: web.1, worker.2); the worker
    # is then named after it and the host, so a restarted process takes its own partitions back at once.
    # Unset: a random name per process, as before
    worker_name: str | None = None
    line_timeout_seconds: float = 10.0
    line_retry_attempts: int = 5
    line_retry_base_seconds: float = 0.5
    broadcast_rate: float = 100.0  # multicast requests per second (LINE allows 200)
    broadcast_concurrency: int = 4  # multicast requests in flight at once, paced by broadcast_rate
    broadcast_poll_seconds: float = 1.0
    delivery_poll_seconds: float = 1.0  # how often a worker's delivery sender looks for due deliveries
    body_read_seconds: float = 10.0  # a request body must arrive within this (slowloris); LINE's arrive at once
    header_read_seconds: float = 10.0  # a request's line and headers must arrive within this (bot/web/server.py)
    # how many reverse proxies in front of us append to X-Forwarded-For (TRUSTED_PROXY_HOPS); 0: the socket's
    # peer is the client. Used to tell clients apart for the invite-code guessing limit (bot/web/limits.py)
    trusted_proxy_hops: int = 0
    health_max_queue_age_seconds: float = 60.0  # /healthz says "degraded" when an event has waited longer
    # Redis connections a process keeps at most (per node on a cluster; bot/infra/redis_conn.py `connect`).
    # On a single server, plain commands share one more connection of their own (bot/infra/mux.py) and
    # never wait for these: the pool holds blocking reads, pipelines and MULTI/EXEC. On a cluster every
    # command uses it. A command finding them all busy waits its turn, up to redis_pool_timeout_seconds,
    # then fails (the webhook answers 503). 128 fits one process: the worker needs up to ~80 at once (a blocking read per
    # held partition, 64 events in flight, the clock, broadcasts) and the webhook one per partition with a
    # call in flight (bot/intake/stream.py); a burst of 1,000 webhooks into `serve` peaked at 68 in use.
    # More would add no throughput (one core here and one in Redis are the limit), and 128 times the
    # processes stays far below Redis's maxclients (10,000).
    redis_pool_size: int = 128
    # a burst waits milliseconds; this long only when Redis stalls, and then the webhook answers 503 (LINE
    # itself gives up after 2 s) and a handler is tried again, instead of requests piling up for ever
    redis_pool_timeout_seconds: float = 5.0
    # pending connections the web server's socket queues (`serve`; Linux caps it at net.core.somaxconn).
    # aiohttp's 128 made a burst's extra connections wait for a SYN retry, a second or more.
    http_backlog: int = 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env

        missing = [name for name in REQUIRED if not env.get(name, "").strip()]
        if missing:  # all of them in one line, so that one run tells everything to set
            names = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
            raise ConfigError(f"{names} {'is' if len(missing) == 1 else 'are'} not set")

        def required(name: str) -> str:
            return env[name].strip()

        def url(name: str, value: str, schemes: tuple[str, ...]) -> str:
            parsed = urlparse(value)
            if parsed.scheme not in schemes or not parsed.netloc:
                raise ConfigError(f"{name} must be a {' or '.join(schemes)} URL, got {value!r}")
            return value.rstrip("/")

        def origin(name: str, value: str) -> str:
            parsed = urlparse(value)
            if parsed.query or parsed.fragment or parsed.params:
                raise ConfigError(f"{name} must be an origin (and optional path) without ? or #, got {value!r}")
            return value

        values: dict[str, object] = {
            "channel_secret": required("LINE_CHANNEL_SECRET"),
            "channel_access_token": required("LINE_CHANNEL_ACCESS_TOKEN"),
            "public_base_url": origin("PUBLIC_BASE_URL", url("PUBLIC_BASE_URL", required("PUBLIC_BASE_URL"),
                                                             ("https", "http"))),
            "line_api_base_url": url("LINE_API_BASE_URL", env.get("LINE_API_BASE_URL") or "https://api.line.me",
                                     ("https", "http")),
            "data_dir": Path(env.get("DATA_DIR") or "./var"),
            "log_level": log_level(env.get("LOG_LEVEL") or "INFO"),
            "admin_token": env.get("ADMIN_TOKEN") or None,
            "staff_user_ids": frozenset(u.strip() for u in env.get("STAFF_USER_IDS", "").split(",") if u.strip()),
        }
        if env.get("REDIS_URL"):
            redis_url = url("REDIS_URL", env["REDIS_URL"], ("redis", "rediss"))
            values["redis_url"] = redis_url
            values["redis_cluster"] = "cluster=true" in redis_url or env.get("REDIS_CLUSTER") == "1"
        if env.get("LINE_BASIC_ID"):
            basic_id = env["LINE_BASIC_ID"].strip()
            if not basic_id.startswith("@") or len(basic_id) < 2:
                raise ConfigError(f"LINE_BASIC_ID must start with @, got {basic_id!r}")
            values["line_basic_id"] = basic_id
        if env.get("SHOP_LINK_URL", "").strip():
            link_url = env["SHOP_LINK_URL"].strip()
            parsed = urlparse(link_url)
            if parsed.scheme not in ("https", "http") or not parsed.netloc or parsed.fragment or len(link_url) > 900:
                # 900: the link token (and its name) must still fit LINE's 1,000 characters of a button's uri
                raise ConfigError(f"SHOP_LINK_URL must be an https (or http) URL without #, at most 900 "
                                  f"characters, got {link_url[:80]!r}")
            values["shop_link_url"] = link_url
        if env.get("FORWARD_WEBHOOK_URLS", "").strip():
            values["forward_webhook_urls"] = _forward_urls(env["FORWARD_WEBHOOK_URLS"],
                                                           str(values["public_base_url"]))
        if env.get("SHOPIFY_WEBHOOK_SECRET", "").strip():
            values["shopify_webhook_secret"] = env["SHOPIFY_WEBHOOK_SECRET"].strip()
        if env.get("REWARDS_CONFIG"):
            path = Path(env["REWARDS_CONFIG"])
            if not path.is_file():
                raise ConfigError(f"REWARDS_CONFIG names no readable file: {path}")
            values["rewards_config"] = path
        if env.get("WORKER_LEASE_MS"):
            values["lease_ms"] = whole_number(env["WORKER_LEASE_MS"], "WORKER_LEASE_MS", 500, 3_600_000,
                                              "a whole number of milliseconds from 500 to 3600000")
        if env.get("STREAM_PARTITIONS"):
            values["stream_partitions"] = whole_number(env["STREAM_PARTITIONS"], "STREAM_PARTITIONS", 1, 1024,
                                                       "a whole number of intake partitions from 1 to 1024")
        if env.get("DYNO", "").strip():  # the platform's, not ours to refuse: made safe for a key and a log line
            values["worker_name"] = re.sub(r"[^A-Za-z0-9._:-]", "_", env["DYNO"].strip())[:64]
        if env.get("TRUSTED_PROXY_HOPS"):
            values["trusted_proxy_hops"] = whole_number(
                env["TRUSTED_PROXY_HOPS"].strip(), "TRUSTED_PROXY_HOPS", 0, 5,
                "a whole number from 0 to 5 (the reverse proxies in front that append to X-Forwarded-For)")
        if env.get("DASHBOARD_IDLE_MINUTES"):
            values["dashboard_idle_minutes"] = whole_number(
                env["DASHBOARD_IDLE_MINUTES"].strip(), "DASHBOARD_IDLE_MINUTES", 1, 1440,
                "a whole number of minutes from 1 to 1440")
        if env.get("BROADCAST_RATE"):
            values["broadcast_rate"] = _number(env, "BROADCAST_RATE", MULTICAST_PER_SECOND, "multicast requests per "
                                               f"second, above 0 and at most LINE's {MULTICAST_PER_SECOND}")
        if env.get("HEALTH_MAX_QUEUE_AGE_SECONDS"):
            values["health_max_queue_age_seconds"] = _number(env, "HEALTH_MAX_QUEUE_AGE_SECONDS", sys.float_info.max,
                                                             "a number of seconds above 0")
        values.update(_liff(env))
        values.update(_shopify(env, url))
        for bad in [u for u in values["staff_user_ids"] if not re.fullmatch(r"U[0-9a-f]{32}", u)]:  # type: ignore[attr-defined]
            raise ConfigError(f"STAFF_USER_IDS holds something that is not a LINE user id: {bad!r}")
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def _forward_urls(value: str, public_base_url: str) -> tuple[str, ...]:
    """FORWARD_WEBHOOK_URLS: comma-separated; each https, or http to a loopback address; no repeats; never our own
    webhook (each forwarded body would come back, be forwarded again, and so on for ever)."""
    urls: list[str] = []
    own = public_base_url.rstrip("/") + "/callback"
    for url in (u.strip() for u in value.split(",")):
        why = target_refusal(url) if url else "an empty entry (a stray comma?)"
        if not why and url.split("?")[0].rstrip("/") == own:
            why = "it is this bot's own webhook (PUBLIC_BASE_URL/callback): bodies would loop"
        if why:
            raise ConfigError(f"FORWARD_WEBHOOK_URLS: {url[:80]!r} refused: {why}")
        if url not in urls:
            urls.append(url)
    if len(urls) > MAX_FORWARD_URLS:
        raise ConfigError(f"FORWARD_WEBHOOK_URLS holds {len(urls)} URLs; at most {MAX_FORWARD_URLS}")
    return tuple(urls)


def _liff(env: Mapping[str, str]) -> dict[str, object]:
    """LIFF_ID and LINE_LOGIN_CHANNEL_ID: both or neither (a LIFF page whose ID tokens nobody can verify would
    attribute no one). The LIFF ID is LINE's "{channel id}-{8 letters}"; the channel id is digits."""
    liff_id = env.get("LIFF_ID", "").strip()
    channel = env.get("LINE_LOGIN_CHANNEL_ID", "").strip()
    if channel and not re.fullmatch(r"[0-9]{1,20}", channel):
        raise ConfigError(f"LINE_LOGIN_CHANNEL_ID must be a channel ID (digits), got {channel[:60]!r}")
    if not liff_id:
        return {"line_login_channel_id": channel} if channel else {}
    if not re.fullmatch(r"[0-9]{1,20}-[A-Za-z0-9]{1,40}", liff_id):
        raise ConfigError(f"LIFF_ID must be a LIFF app's ID such as 1234567890-AbCdEfGh, got {liff_id[:60]!r}")
    if not channel:
        raise ConfigError("LIFF_ID is set but LINE_LOGIN_CHANNEL_ID is not: set it to the ID of the LINE Login "
                          "channel that holds the LIFF app, whose ID tokens the bot verifies")
    return {"liff_id": liff_id, "line_login_channel_id": channel}


# The Admin API version every call names: Shopify keeps each stable version for a year, so the one we were
# built and tested against is pinned here and moved on deliberately (README "Spending points at the online shop").
SHOPIFY_API_VERSION = "2025-10"


def _shopify(env: Mapping[str, str], url: Callable[[str, str, tuple[str, ...]], str]) -> dict[str, object]:
    """SHOPIFY_SHOP and SHOPIFY_ADMIN_TOKEN: both or neither (a shop we cannot call, or a token for no shop,
    would take points for codes that never come)."""
    shop = env.get("SHOPIFY_SHOP", "").strip().lower()
    token = env.get("SHOPIFY_ADMIN_TOKEN", "").strip()
    if shop and not token:
        raise ConfigError("SHOPIFY_SHOP is set but SHOPIFY_ADMIN_TOKEN is not: set it to the custom app's Admin API "
                          "access token (shpat_…)")
    if token and not shop:
        raise ConfigError("SHOPIFY_ADMIN_TOKEN is set but SHOPIFY_SHOP is not: set it to the shop's myshopify "
                          "domain, such as example.myshopify.com")
    if not shop:
        return {}
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,59}\.myshopify\.com", shop):
        raise ConfigError(f"SHOPIFY_SHOP must be the shop's myshopify domain, such as example.myshopify.com, "
                          f"got {shop[:80]!r}")
    if not re.fullmatch(r"[\x21-\x7e]{1,200}", token):
        raise ConfigError("SHOPIFY_ADMIN_TOKEN must be the Admin API access token as Shopify shows it (no spaces)")
    base = env.get("SHOPIFY_API_BASE_URL", "").strip() or f"https://{shop}"
    return {"shopify_shop": shop, "shopify_admin_token": token,
            "shopify_api_base_url": url("SHOPIFY_API_BASE_URL", base, ("https", "http"))}
