"""HTTP hygiene outside the webhook: Redis down answered 503 (JSON on the API, a kind page elsewhere) and logged
once, a /healthz that tells strangers nothing, the security headers, the invite-code guessing limit, and the
deadline for a request's line and headers (slowloris on headers)."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from multidict import CIMultiDict

from bot.config import ASSETS, ConfigError, Settings
from bot.infra.redis_conn import EmbeddedRedis
from bot.web.http import RedisOutage
from bot.web.limits import MissBudget, client_address
from bot.web.pages.invite import GUESSES
from bot.web.pages.render import style_sources
from linesim.platform import Platform, new_user_id, sign
from tests.support.harness import ADMIN, SECRET, Bot, BotWith, make_settings, start_bot

# ---- Redis down ----------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def fragile(platform: Platform) -> AsyncIterator[tuple[Bot, EmbeddedRedis]]:
    """A bot on a Redis of its own, which the test may stop."""
    with tempfile.TemporaryDirectory() as data:
        server = EmbeddedRedis(Path(data)).start()
        bot = await start_bot(make_settings(server.url, platform), platform, run_worker=False)
        try:
            yield bot, server
        finally:
            await bot.stop()
            server.stop()
    assert not platform.violations


async def test_redis_down_is_a_503_json_error_on_the_api_and_a_kind_page_elsewhere(
        fragile: tuple[Bot, EmbeddedRedis], caplog: pytest.LogCaptureFixture) -> None:
    bot, server = fragile
    code = await bot.services.program.invite_code(new_user_id())
    server.stop()
    with caplog.at_level(logging.INFO):
        for path in (f"/api/v1/members/{new_user_id()}", "/api/v1/stats"):
            async with bot.http.get(bot.url + path, headers={"Authorization": f"Bearer {ADMIN}"}) as r:
                assert r.status == 503 and r.headers["Retry-After"] == "5"
                body = await r.json()
                assert body["error"]["code"] == "UNAVAILABLE" and "try again" in body["error"]["message"]
        async with bot.http.post(bot.url + "/api/v1/conversions", headers={"Authorization": f"Bearer {ADMIN}"},
                                 json={"order_id": "o-1", "user_id": new_user_id(), "amount": 1000}) as r:
            assert r.status == 503 and (await r.json())["error"]["code"] == "UNAVAILABLE"
        pages = {}
        for language in ("ja", "en-US,en;q=0.9"):
            async with bot.http.get(f"{bot.url}/i/{code}", headers={"Accept-Language": language}) as r:
                assert r.status == 503 and r.content_type == "text/html" and r.headers["Retry-After"] == "5"
                assert r.headers["Cache-Control"] == "no-store"
                pages[language] = await r.text()
        assert "ただいま表示できません" in pages["ja"] and 'lang="ja"' in pages["ja"]
        assert "not available right now" in pages["en-US,en;q=0.9"] and 'lang="en"' in pages["en-US,en;q=0.9"]
        for path in (f"/qr/{code}.png", "/c/" + "y" * 22):
            async with bot.http.get(bot.url + path) as r:
                assert r.status == 503 and r.content_type == "text/html"
        async with bot.http.get(bot.url + "/healthz") as r:
            assert r.status == 503
    # one line for the whole outage, no traceback, nothing from aiohttp's "Error handling request"
    errors = [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert [rec.name for rec in errors] == ["bot.web.http"], [rec.getMessage() for rec in errors]
    assert errors[0].exc_info is None and "Redis does not answer" in errors[0].getMessage()


async def test_healthz_keeps_the_cause_in_the_log_not_in_the_body(
        fragile: tuple[Bot, EmbeddedRedis], caplog: pytest.LogCaptureFixture) -> None:
    bot, server = fragile
    server.stop()
    with caplog.at_level(logging.INFO):
        async with bot.http.get(bot.url + "/healthz") as r:
            assert r.status == 503
            text = await r.text()
    assert await_json(text) == {"status": "unavailable"}
    assert str(server.port) not in text and "127.0.0.1" not in text
    (line,) = [rec.getMessage() for rec in caplog.records if rec.name == "bot.web.http"]
    assert str(server.port) in line  # the operator still learns which Redis and why
    restarted = EmbeddedRedis(server.data_dir, port=server.port).start()  # the same data, the same port
    try:
        with caplog.at_level(logging.INFO):
            async with bot.http.get(bot.url + "/healthz") as r:
                assert r.status == 200 and (await r.json())["status"] == "ok"
        assert any("Redis answers again" in rec.getMessage() for rec in caplog.records)
    finally:
        restarted.stop()


def await_json(text: str) -> object:
    import json
    return json.loads(text)


def test_an_outage_is_reported_once_then_at_most_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    outage = RedisOutage(every=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="bot.web.http"):
        for second in range(0, 130, 2):  # a request every 2 s for 130 s
            now[0] = float(second)
            outage.failed("GET /i/X", ConnectionError("refused"))
        outage.answered()
        outage.answered()  # nothing more to say
    lines = [rec.getMessage() for rec in caplog.records]
    assert len(lines) == 4, lines
    assert lines[0].startswith("Redis does not answer (ConnectionError: refused")
    assert "30 requests answered 503 in the last 60 s" in lines[1] and "30 requests" in lines[2]
    assert lines[3] == "Redis answers again (4 requests answered 503 since the last report)"


# ---- headers -------------------------------------------------------------------------------------
async def raw_head(bot: Bot, request: bytes) -> tuple[int, CIMultiDict[str]]:
    """Send bytes as they are (aiohttp's client would not send a malformed request); the status and headers."""
    url = urlsplit(bot.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(request)
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1")
    finally:
        writer.close()
    status_line, *lines = head.strip().split("\r\n")
    headers: CIMultiDict[str] = CIMultiDict(line.split(": ", 1) for line in lines)  # type: ignore[misc]
    return int(status_line.split()[1]), headers


async def test_no_response_names_the_server_software(bot_with: BotWith) -> None:
    bot = await bot_with(run_worker=False)
    code = await bot.services.program.invite_code(new_user_id())
    body = bot.platform.payload(bot.platform.follow(new_user_id()))
    requests = {
        200: [f"GET /i/{code}", f"GET /qr/{code}.png", "GET /healthz", "GET /metrics", "GET /api/v1/stats"],
        404: ["GET /i/ABCDEFGH", "GET /no/such/route", "GET /c/" + "y" * 22],
        405: ["DELETE /healthz", "PUT /callback"],
    }
    for status, lines in requests.items():
        for line in lines:
            got, headers = await raw_head(bot, f"{line} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n"
                                               "Connection: close\r\n\r\n".encode())
            assert got == status, line
            assert "Server" not in headers, (line, headers["Server"])
            assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
    # 413, as aiohttp itself answers a body over client_max_size, and the webhook's own 200
    big = b"x" * (1024 * 1024 + 1)
    got, headers = await raw_head(bot, b"POST /api/v1/conversions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                                       b"Authorization: Bearer %s\r\nConnection: close\r\n\r\n%s"
                                       % (len(big), ADMIN.encode(), big))
    assert got == 413 and "Server" not in headers
    got, headers = await raw_head(bot, b"POST /callback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                       b"X-Line-Signature: " + sign(body, SECRET).encode() +
                                  b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    assert got == 200 and "Server" not in headers


@pytest.mark.parametrize("request_bytes", [
    b"GET /healthz HTTP/1.1 trailing\r\nHost: x\r\n\r\n",  # a request line aiohttp cannot parse
    b"G\x00T /healthz HTTP/1.1\r\nHost: x\r\n\r\n",  # no such method
    b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",  # no such version
    b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n",  # a header line without its colon
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # TLS spoken to the HTTP port
], ids=["line", "method", "version", "header", "tls"])
async def test_aiohttps_own_400_for_an_unparseable_request_names_no_server_software(
        bot_with: BotWith, request_bytes: bytes) -> None:
    """aiohttp answers a request it cannot parse itself, before any middleware or on_response_prepare runs."""
    bot = await bot_with(run_worker=False)
    got, headers = await raw_head(bot, request_bytes)
    assert got == 400, got
    assert "Server" not in headers, headers["Server"]
    assert headers["X-Content-Type-Options"] == "nosniff"


def style_hashes(page: str) -> set[str]:
    return {"'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"
            for block in re.findall(r"<style>(.*?)</style>", page, re.S)}


async def test_html_pages_carry_a_strict_policy_that_fits_what_they_load(bot_with: BotWith) -> None:
    bot = await bot_with(run_worker=False)
    code = await bot.services.program.invite_code(new_user_id())
    for path, status in ((f"/i/{code}", 200), ("/i/ABCDEFGH", 404), ("/c/" + "y" * 22, 404)):
        async with bot.http.get(bot.url + path) as r:
            assert r.status == status and r.content_type == "text/html"
            page = await r.text()
            policy = dict(part.strip().split(" ", 1) for part in r.headers["Content-Security-Policy"].split(";"))
            assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["Referrer-Policy"] == "no-referrer"
            assert r.headers["Cache-Control"] == "no-store", path  # the 404 too: the code may be valid later
        assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
        assert policy["base-uri"] == "'none'" and policy["form-action"] == "'none'"
        assert "script-src" not in policy and "'unsafe-inline'" not in policy["style-src"]
        assert style_hashes(page) and style_hashes(page) <= set(policy["style-src"].split()), path
        assert policy["img-src"] == "'self' https://shop.example.test"  # the coupon page's QR: PUBLIC_BASE_URL
        assert "<script" not in page and "style=" not in page  # nothing the policy would block
    # the oaMessage link is a navigation, which the policy leaves alone
    assert 'href="https://line.me/R/oaMessage/' in (await (await bot.http.get(f"{bot.url}/i/{code}")).text())


def test_every_template_style_is_in_the_policy() -> None:
    for template in sorted((ASSETS / "pages").glob("*.html")):
        hashes = style_hashes(template.read_text(encoding="utf-8"))
        assert hashes and hashes <= set(style_sources()), template.name


# ---- invite-code guessing ------------------------------------------------------------------------
def unknown_codes(n: int) -> list[str]:
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    return ["".join(alphabet[(i * 7 + k) % 32] for k in range(7)) + "Z" for i in range(n)]


async def test_guessing_invite_codes_is_limited_per_client_and_real_codes_still_open(bot_with: BotWith) -> None:
    bot = await bot_with(run_worker=False, trusted_proxy_hops=1)
    now = [1000.0]
    guesses = bot.app[GUESSES]
    guesses.clock = lambda: now[0]
    code = await bot.services.program.invite_code(new_user_id())
    guesser = {"X-Forwarded-For": "198.51.100.7"}
    for i, guess in enumerate(unknown_codes(guesses.burst)):
        async with bot.http.get(f"{bot.url}/{'qr' if i % 2 else 'i'}/{guess}{'.png' if i % 2 else ''}",
                                headers=guesser) as r:
            assert r.status == 404
    # budget spent: every lookup refused, a real code too (else the 429s would tell the codes apart)
    for path in (f"/qr/{unknown_codes(guesses.burst + 1)[-1]}.png", f"/qr/{code}.png"):
        async with bot.http.get(bot.url + path, headers=guesser) as r:
            assert r.status == 429 and r.headers["Retry-After"] == "3"
    async with bot.http.get(f"{bot.url}/i/{code}", headers={**guesser, "Accept-Language": "en"}) as r:
        assert r.status == 429 and r.content_type == "text/html" and "Please wait" in await r.text()
        assert r.headers["Cache-Control"] == "no-store" and "Content-Security-Policy" in r.headers
    # another client behind the same proxy is not affected; a forged left-hand entry changes nothing
    async with bot.http.get(f"{bot.url}/qr/{code}.png", headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}
                            ) as r:
        assert r.status == 200 and r.content_type == "image/png"
    # the budget refills: one more lookup every 3 s
    now[0] += 3
    async with bot.http.get(f"{bot.url}/qr/{code}.png", headers=guesser) as r:
        assert r.status == 200


async def test_a_real_members_qr_is_never_refused(bot_with: BotWith) -> None:
    """LINE's servers fetch every QR the bot sends, from a few addresses: real codes never spend the budget."""
    bot = await bot_with(run_worker=False)
    codes = [await bot.services.program.invite_code(new_user_id()) for _ in range(5)]
    for _ in range(40):
        for code in codes:
            async with bot.http.get(f"{bot.url}/qr/{code}.png") as r:
                assert r.status == 200
    # and malformed codes (answered 404 without a lookup) spend nothing either
    for _ in range(50):
        async with bot.http.get(f"{bot.url}/qr/nope.png") as r:
            assert r.status == 404
    async with bot.http.get(f"{bot.url}/i/{codes[0]}") as r:
        assert r.status == 200


def test_the_budget_is_a_token_bucket_and_reports_a_run_out_once() -> None:
    now = [0.0]
    budget = MissBudget(burst=3, refill_seconds=2.0, max_clients=2, clock=lambda: now[0])
    assert [budget.missed("a") for _ in range(3)] == [False, False, True]
    assert budget.retry_after("a") == 2 and budget.retry_after("b") == 0
    now[0] = 2.0
    assert budget.retry_after("a") == 0 and budget.missed("a") is False  # still the same run-out: no new report
    now[0] = 20.0  # full again
    assert [budget.missed("a") for _ in range(3)] == [False, False, True]
    budget.missed("b")
    budget.missed("c")  # a third client: the least recently missed ("a") is forgotten
    assert budget.retry_after("a") == 0


class FakeRequest:
    def __init__(self, remote: str, forwarded: list[str]):
        self.remote = remote
        self.headers: CIMultiDict[str] = CIMultiDict(("X-Forwarded-For", f) for f in forwarded)


@pytest.mark.parametrize(("remote", "forwarded", "hops", "client"), [
    ("203.0.113.5", ["198.51.100.1"], 0, "203.0.113.5"),  # no proxy trusted: the header is the client's word
    ("10.0.0.2", ["198.51.100.1"], 1, "198.51.100.1"),
    ("10.0.0.2", ["1.2.3.4, 198.51.100.1"], 1, "198.51.100.1"),  # a forged left entry is ignored
    ("10.0.0.2", ["1.2.3.4", "198.51.100.1, 10.0.0.9"], 2, "198.51.100.1"),  # two proxies, header lines joined
    ("198.51.100.3", [], 1, "198.51.100.3"),  # not through the proxy: its peer
    ("2001:db8:1:2:aaaa::1", [], 0, "2001:db8:1:2::/64"),  # IPv6 counts by the subscriber's /64
    ("::ffff:198.51.100.4", [], 0, "198.51.100.4"),
])
def test_the_client_is_who_the_trusted_proxies_say(remote: str, forwarded: list[str], hops: int, client: str) -> None:
    assert client_address(FakeRequest(remote, forwarded), hops) == client  # type: ignore[arg-type]


GOOD_ENV = {"LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t", "PUBLIC_BASE_URL": "https://x.test"}


@pytest.mark.parametrize(("value", "hops"), [("0", 0), ("1", 1), ("2", 2), ("-1", None), ("one", None),
                                             ("²", None), ("9", None)])
def test_trusted_proxy_hops_comes_from_the_environment(value: str, hops: int | None) -> None:
    env = {**GOOD_ENV, "TRUSTED_PROXY_HOPS": value}
    if hops is None:
        with pytest.raises(ConfigError, match="TRUSTED_PROXY_HOPS"):
            Settings.from_env(env)
    else:
        assert Settings.from_env(env).trusted_proxy_hops == hops
    assert Settings.from_env(GOOD_ENV).trusted_proxy_hops == 0


# ---- slow headers --------------------------------------------------------------------------------
HEADER_SECONDS = 0.5


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, bot: Bot) -> Connection:
        url = urlsplit(bot.url)
        return cls(*await asyncio.open_connection(url.hostname, url.port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[int, bytes]:
        """One response: (status, body)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        length = int(re.search(rb"Content-Length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
        return int(head.split()[1]), await asyncio.wait_for(self.reader.readexactly(length), 10)

    def close(self) -> None:
        self.writer.close()


@pytest_asyncio.fixture
async def strict_bot(bot_with: BotWith) -> Bot:
    return await bot_with(run_worker=False, header_read_seconds=HEADER_SECONDS, body_read_seconds=5.0)


async def test_trickled_header_lines_are_cut_off_without_blocking_anyone(
        strict_bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    bot = strict_bot
    slow = await Connection.open(bot)

    async def trickle() -> bytes:
        """A header line every 0.1 s, for as long as the server listens; then what it answered."""
        await slow.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        try:
            for n in range(1000):
                await slow.send(b"X-Trickle-%d: 1\r\n" % n)
                try:
                    first = await asyncio.wait_for(slow.reader.read(1000), 0.1)
                    break
                except asyncio.TimeoutError:
                    continue
            else:
                raise AssertionError("the trickle was never cut off")
        except ConnectionError:  # closed while we were sending: what it answered is in the reader
            first = b""
        return first + await asyncio.wait_for(slow.reader.read(), 10)  # up to the close

    with caplog.at_level(logging.INFO, logger="bot.web.server"):
        cut = asyncio.create_task(trickle())
        for _ in range(4):  # meanwhile everyone else is served
            async with bot.http.get(bot.url + "/healthz") as r:
                assert r.status == 200
            await asyncio.sleep(0.1)
        answer = await asyncio.wait_for(cut, 30)  # read up to the close
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and b"Server:" not in answer
        assert answer.endswith(b"the request headers did not arrive in time")
    slow.close()
    (line,) = [rec.getMessage() for rec in caplog.records if rec.name == "bot.web.server"]
    assert "request headers from 127.0.0.1 not complete" in line


async def test_a_connection_that_sends_nothing_is_closed(strict_bot: Bot) -> None:
    idle = await Connection.open(strict_bot)
    assert await asyncio.wait_for(idle.reader.read(), 30) == b""
    idle.close()


async def test_keep_alive_idle_time_bodies_and_split_headers_are_not_cut(strict_bot: Bot) -> None:
    bot = strict_bot
    conn = await Connection.open(bot)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    await conn.send(request)
    assert (await conn.response())[0] == 200
    await asyncio.sleep(HEADER_SECONDS + 0.3)  # idle between requests is keep-alive's, not the deadline's
    await conn.send(request[:10])
    await asyncio.sleep(HEADER_SECONDS / 3)
    await conn.send(request[10:])  # headers in pieces, within the deadline
    assert (await conn.response())[0] == 200
    # a body that comes later than the header deadline, within the body's own: the body timeout's business
    body = b'{"order_id": "o-1"}'
    await conn.send(b"POST /api/v1/conversions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Authorization: Bearer " + ADMIN.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body))
    await asyncio.sleep(HEADER_SECONDS + 0.3)
    await conn.send(body)
    status, answer = await conn.response()
    assert status == 400 and b"MISSING_FIELD" in answer  # read and answered, not cut
    await asyncio.sleep(HEADER_SECONDS + 0.3)
    await conn.send(request)  # the same connection still serves
    assert (await conn.response())[0] == 200
    # and the next request on it, trickled, is cut as on a new connection
    await conn.send(b"GET /healthz HTTP/1.1\r\n")
    status, _ = await conn.response()
    assert status == 408
    conn.close()
