"""A stand-in for the LINE platform: the only fake in this project.

It plays both sides of LINE on loopback. As the Messaging API it serves the `/v2/bot/...`
endpoints the bot calls, checks every request the way LINE does (bearer token, request bodies
against the SDK's models, which are generated from LINE's OpenAPI spec, plus the documented
limits the spec leaves out: text length, altText, label lengths, single-use reply tokens within
60 s, UUID retry keys with 409 on reuse, no retry key on reply) and records it. As the webhook
sender it builds complete events, signs them with the channel secret and POSTs them to the bot.

Tests use it in-process; `python -m bot dev` puts the simulator console in front of it.

A little over 400 lines: each endpoint's checks sit beside the endpoint, so one reads how LINE would
answer a request in one place (rich menus are apart, in linesim/richmenus.py).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web
from linebot.v3.messaging import (
    BroadcastRequest,
    MulticastRequest,
    PushMessageRequest,
    ReplyMessageRequest,
    ShowLoadingAnimationRequest,
)

from bot.line import limits as line_limits
from linesim.richmenus import RichMenuStore

BOT_USER_ID = "U" + "b0" * 16
LOGIN_CHANNEL_ID = "2000000001"  # the stand-in's LINE Login channel (the LIFF app's); `python -m bot dev` uses it
LIFF_ID = f"{LOGIN_CHANNEL_ID}-ShokaiSm"  # the stand-in's LIFF app on that channel
ID_TOKEN_SECONDS = 3600  # LINE's ID tokens live an hour (the JWT's exp)
_PARSED = web.RequestKey("parsed_json", object)  # a request's JSON body, parsed once (Platform._json)


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def new_user_id() -> str:
    return "U" + secrets.token_hex(16)


def _event_id() -> str:
    # a ULID-shaped id: 26 Crockford base-32 characters
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(26))


@dataclass
class Call:
    endpoint: str
    body: dict
    headers: dict
    status: int
    at: float
    to: list[str] = field(default_factory=list)  # the users it reached (when it succeeded)


@dataclass
class Platform:
    secret: str
    token: str
    basic_id: str = "@shokai"
    bot_url: str = ""
    strict_media: bool = True  # LINE needs https image URLs; the local console allows http
    port: int = 0
    calls: list[Call] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    profiles: dict[str, dict] = field(default_factory=dict)
    followers: list[str] = field(default_factory=list)
    # fault injection, consumed one call at a time by the message endpoints
    fail_next: int = 0
    throttle_next: int = 0
    monthly_limit_reached: bool = False
    delay_seconds: float = 0.0
    delay_jitter_seconds: float = 0.0  # each message call waits delay_seconds plus up to this much more
    clock: Callable[[], float] = time.monotonic
    reply_tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    retry_keys: set[str] = field(default_factory=set)
    listeners: list[Callable[[Call], None]] = field(default_factory=list)
    # LINE's per-endpoint rate limits (requests in any 1 s, on this stand-in's clock): over it, a 429 and a
    # violation. Every message call's arrival time is kept per endpoint in request_times.
    rate_limits: dict[str, float] = field(default_factory=lambda: {
        "multicast": float(line_limits.MULTICAST_PER_SECOND), "push": float(line_limits.PUSH_PER_SECOND)})
    request_times: dict[str, list[float]] = field(default_factory=dict)
    monthly_quota: int | None = 30000  # None: unlimited ("none" plan type)
    # The body checks (the SDK's models and LINE's limits) run later, by check_held(), instead of before the
    # answer: the webhook benchmark runs them between its stages, so that checking the contenders' replies
    # (Shokai's Flex cards cost 20-40x an echo text to validate) does not take the cores they are measured
    # on. Every body is still checked, the same way; a failure is a violation, and the benchmark then
    # reports nothing. Tests keep the default: a bad body is refused with a 400 as LINE would.
    check_later: bool = False
    held_for_check: list[tuple[str, Any, dict]] = field(default_factory=list)
    # LINE Login (LIFF): the channel whose ID tokens this stand-in issues, and its signing key (HS256, as LINE
    # signs web-login tokens with the channel secret); verify_down makes /oauth2/v2.1/verify answer 500
    login_channel_id: str = LOGIN_CHANNEL_ID
    login_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    verify_down: bool = False
    # account link: link token -> (the user it was issued for, issued at on this stand-in's clock, used)
    link_tokens: dict[str, tuple[str, float, bool]] = field(default_factory=dict)
    richmenus: RichMenuStore = field(init=False)

    def __post_init__(self) -> None:
        self.richmenus = RichMenuStore(self)  # menus, images, default, aliases, per-user links

    # ---- lifecycle --------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=2 * 1024 * 1024)
        r = app.router
        r.add_post("/v2/bot/message/reply", self._reply)
        r.add_post("/v2/bot/message/push", self._push)
        r.add_post("/v2/bot/message/multicast", self._multicast)
        r.add_post("/v2/bot/message/broadcast", self._broadcast)
        r.add_get("/v2/bot/profile/{user_id}", self._profile)
        r.add_get("/v2/bot/info", self._info)
        r.add_post("/v2/bot/chat/loading/start", self._loading)
        r.add_get("/v2/bot/message/quota", self._quota)
        r.add_get("/v2/bot/message/quota/consumption", self._consumption)
        r.add_post("/oauth2/v2.1/verify", self._verify_id_token)
        r.add_post("/v2/bot/user/{user_id}/linkToken", self._link_token)
        self.richmenus.add_routes(r)
        r.add_route("*", "/{tail:.*}", self._unknown)
        return app

    async def start(self, host: str = "127.0.0.1") -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._session = ClientSession(timeout=ClientTimeout(total=30))

    async def stop(self) -> None:
        await self._session.close()
        await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- the Messaging API side -------------------------------------------------------
    def _violation(self, what: str) -> None:
        self.violations.append(what)

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        for listener in self.listeners:
            listener(call)

    async def _authorized_json(self, request: web.Request, endpoint: str) -> tuple[Any, web.Response | None]:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self._violation(f"{endpoint}: missing or wrong channel access token")
            return None, web.json_response({"message": "Authentication failed. Confirm that the access token in the authorization header is valid."}, status=401)
        if not request.body_exists:
            return {}, None
        try:
            return await self._json(request), None
        except json.JSONDecodeError:
            self._violation(f"{endpoint}: body is not JSON")
            return None, web.json_response({"message": "The request body has 1 error(s)"}, status=400)

    @staticmethod
    async def _json(request: web.Request) -> Any:
        """The request's JSON body, parsed once however many checks read it."""
        if _PARSED not in request:
            request[_PARSED] = await request.json()
        return request[_PARSED]

    @staticmethod
    def _schema_problem(model: Any, body: dict) -> str | None:
        """What the SDK's model (generated from LINE's OpenAPI spec) finds wrong with a request body."""
        try:
            model.from_dict(body)
        except (ValueError, TypeError) as exc:
            return f"request does not match LINE's schema: {exc}"
        return None

    def check_held(self) -> int:
        """Check the bodies held by check_later; each problem becomes a violation. Returns how many."""
        held, self.held_for_check = self.held_for_check, []
        for endpoint, model, body in held:
            problem = self._schema_problem(model, body) or self._limits(body.get("messages", []))
            if problem:
                self._violation(f"{endpoint}: {problem}")
        return len(held)

    def _limits(self, messages: list[dict]) -> str | None:
        """LINE's documented limits that its OpenAPI spec (and so the SDK's models) leave out."""
        return line_limits.problem(messages, self.strict_media)

    async def _message_call(self, request: web.Request, endpoint: str, model: Any,
                            recipients: Callable[[dict], list[str] | str]) -> web.Response:
        body, error = await self._authorized_json(request, endpoint)
        if error:
            return error
        if self._over_rate(endpoint):
            self._violation(f"{endpoint}: more than {self.rate_limits[endpoint]:g} requests in one second")
            return self._answer(endpoint, body, request, 429, "Too Many Requests")
        if self.delay_seconds or self.delay_jitter_seconds:
            await asyncio.sleep(self.delay_seconds + random.uniform(0, self.delay_jitter_seconds))
        key = request.headers.get("X-Line-Retry-Key")
        if endpoint == "reply" and key is not None:
            self._violation("reply: X-Line-Retry-Key is not allowed on reply")
            return self._answer(endpoint, body, request, 400, "The retry key is not supported for this API")
        if self.throttle_next > 0:
            self.throttle_next -= 1
            return self._answer(endpoint, body, request, 429, "Too Many Requests")
        if self.monthly_limit_reached and endpoint != "reply":
            return self._answer(endpoint, body, request, 429, "You have reached your monthly limit.")
        if self.fail_next > 0:
            self.fail_next -= 1
            return self._answer(endpoint, body, request, 500, "Internal server error")
        if key is not None:
            try:
                uuid.UUID(key)
            except ValueError:
                self._violation(f"{endpoint}: X-Line-Retry-Key is not a UUID: {key!r}")
                return self._answer(endpoint, body, request, 400, "Invalid retry key")
            if key in self.retry_keys:
                return self._answer(endpoint, body, request, 409, "The retry key is already accepted",
                                    headers={"X-Line-Accepted-Request-Id": "accepted-" + key[:8]})
        problem = None
        if self.check_later:
            self.held_for_check.append((endpoint, model, body))
        else:
            schema_problem = self._schema_problem(model, body)
            if schema_problem:
                self._violation(f"{endpoint}: {schema_problem}")
                return self._answer(endpoint, body, request, 400, "The request body has 1 error(s)")
            problem = self._limits(body.get("messages", []))
        to = recipients(body)
        if isinstance(to, str):  # a problem found by the endpoint's own check
            problem = problem or to
            to = []
        if problem:
            self._violation(f"{endpoint}: {problem}")
            return self._answer(endpoint, body, request, 400, problem)
        if key is not None:
            self.retry_keys.add(key)
        self._record(Call(endpoint, body, dict(request.headers), 200, self.clock(), to))
        return web.json_response({"sentMessages": [{"id": str(secrets.randbits(60)), "quoteToken": secrets.token_hex(8)}
                                                   for _ in body["messages"]]})

    def _over_rate(self, endpoint: str) -> bool:
        now = self.clock()
        times = self.request_times.setdefault(endpoint, [])
        times.append(now)
        limit = self.rate_limits.get(endpoint)
        if limit is None:
            return False
        in_window = 0
        for t in reversed(times):
            if t <= now - 1.0:
                break
            in_window += 1
        return in_window > limit

    def max_rate(self, endpoint: str) -> int:
        """The most requests to an endpoint that arrived within any one second (this stand-in's clock)."""
        times, most, start = self.request_times.get(endpoint, []), 0, 0
        for end, t in enumerate(times):
            while times[start] <= t - 1.0:
                start += 1
            most = max(most, end - start + 1)
        return most

    def _answer(self, endpoint: str, body: dict, request: web.Request, status: int, message: str,
                headers: dict | None = None) -> web.Response:
        self._record(Call(endpoint, body, dict(request.headers), status, self.clock()))
        return web.json_response({"message": message}, status=status, headers=headers)

    async def _reply(self, request: web.Request) -> web.Response:
        def recipients(body: dict) -> list[str] | str:
            held = self.reply_tokens.pop(body.get("replyToken", ""), None)
            if held is None:
                return "Invalid reply token"
            user, issued = held
            if self.clock() - issued > line_limits.REPLY_TOKEN_SECONDS:
                return "Invalid reply token"
            return [user]

        # an invalid token is LINE's ordinary answer, not a protocol violation by the bot
        body_peek = await self._json(request) if request.body_exists else {}
        if body_peek.get("replyToken") not in self.reply_tokens:
            self._record(Call("reply", body_peek, dict(request.headers), 400, self.clock()))
            return web.json_response({"message": "Invalid reply token"}, status=400)
        return await self._message_call(request, "reply", ReplyMessageRequest, recipients)

    async def _push(self, request: web.Request) -> web.Response:
        def recipients(body: dict) -> list[str] | str:
            to = body.get("to", "")
            if not (isinstance(to, str) and len(to) == 33 and to[0] in "UCR"):
                return f"bad 'to': {to!r}"
            return [to] if to in self.followers else []  # LINE answers 200 but a blocked user gets nothing

        return await self._message_call(request, "push", PushMessageRequest, recipients)

    async def _multicast(self, request: web.Request) -> web.Response:
        def recipients(body: dict) -> list[str] | str:
            to = body.get("to", [])
            if len(to) > line_limits.MULTICAST_TO_MAX:
                return f"multicast 'to' has {len(to)} user IDs; LINE takes at most {line_limits.MULTICAST_TO_MAX}"
            if len(set(to)) != len(to):
                return "multicast 'to' repeats a user ID"
            followers = set(self.followers)  # a set: fan-out benchmarks send to 100,000 followers
            return [u for u in to if u in followers]

        return await self._message_call(request, "multicast", MulticastRequest, recipients)

    async def _broadcast(self, request: web.Request) -> web.Response:
        return await self._message_call(request, "broadcast", BroadcastRequest, lambda body: list(self.followers))

    async def _loading(self, request: web.Request) -> web.Response:
        body, error = await self._authorized_json(request, "loading")
        if error:
            return error
        if self.check_later:
            self.held_for_check.append(("loading", ShowLoadingAnimationRequest, body))
        else:
            try:
                ShowLoadingAnimationRequest.from_dict(body)
            except (ValueError, TypeError) as exc:
                self._violation(f"loading: {exc}")
                return web.json_response({"message": str(exc)}, status=400)
        self._record(Call("loading", body, dict(request.headers), 202, self.clock()))
        return web.json_response({}, status=202)

    async def _profile(self, request: web.Request) -> web.Response:
        _, error = await self._authorized_json(request, "profile")
        if error:
            return error
        profile = self.profiles.get(request.match_info["user_id"])
        if profile is None:
            return web.json_response({"message": "Not found"}, status=404)
        return web.json_response(profile)

    async def _info(self, request: web.Request) -> web.Response:
        _, error = await self._authorized_json(request, "info")
        if error:
            return error
        return web.json_response({"userId": BOT_USER_ID, "basicId": self.basic_id, "displayName": "Shokai Shop",
                                  "chatMode": "bot", "markAsReadMode": "auto"})

    async def _quota(self, request: web.Request) -> web.Response:
        if self.monthly_quota is None:
            return web.json_response({"type": "none"})
        return web.json_response({"type": "limited", "value": self.monthly_quota})

    async def _consumption(self, request: web.Request) -> web.Response:
        used = sum(len(c.to) for c in self.calls if c.status == 200 and c.endpoint in ("push", "multicast", "broadcast"))
        return web.json_response({"totalUsage": used})

    # ---- LINE Login: ID tokens as liff.getIDToken() gives them, and their verification ----
    def id_token(self, user_id: str, *, channel_id: str | None = None, expires_in: int = ID_TOKEN_SECONDS,
                 name: str | None = None) -> str:
        """A JWT as LINE issues for the LIFF app (iss access.line.me, sub the user, aud the channel), signed with
        this stand-in's key so that only its own tokens verify; `expires_in` <= 0 gives an expired one."""
        now = int(time.time())
        claims = {"iss": "https://access.line.me", "sub": user_id, "aud": channel_id or self.login_channel_id,
                  "exp": now + expires_in, "iat": now, "amr": ["linesso"],
                  "name": name or self.profiles.get(user_id, {}).get("displayName", "LINE user")}

        def part(value: dict) -> str:
            raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        head = part({"typ": "JWT", "alg": "HS256"}) + "." + part(claims)
        mac = hmac.new(self.login_secret.encode(), head.encode(), hashlib.sha256).digest()
        return head + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def _claims(self, token: str) -> dict | None:
        """The claims of a token this stand-in signed, or None (forged, altered, not a JWT)."""
        try:
            head, body, mac = token.split(".")
            expected = hmac.new(self.login_secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
            given = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
            if not hmac.compare_digest(expected, given):
                return None
            claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (ValueError, json.JSONDecodeError):
            return None
        return claims if isinstance(claims, dict) else None

    async def _verify_id_token(self, request: web.Request) -> web.Response:
        """POST /oauth2/v2.1/verify (form: id_token, client_id, optional nonce and user_id), as LINE Login
        answers it: the claims, or 400 {"error": "invalid_request", "error_description"}."""
        form = await request.post()

        def refused(description: str) -> web.Response:
            self._record(Call("verify", {"client_id": form.get("client_id")}, dict(request.headers), 400, self.clock()))
            return web.json_response({"error": "invalid_request", "error_description": description}, status=400)

        if self.verify_down:
            self._record(Call("verify", {}, dict(request.headers), 500, self.clock()))
            return web.json_response({"message": "Internal server error"}, status=500)
        token, client_id = form.get("id_token"), form.get("client_id")
        if not isinstance(token, str) or not token:
            return refused("id_token is required")
        if not isinstance(client_id, str) or not client_id:
            return refused("client_id is required")
        claims = self._claims(token)
        if claims is None:
            return refused("Invalid IdToken.")
        if int(claims.get("exp", 0)) <= int(time.time()):
            return refused("IdToken expired.")
        if str(claims.get("aud")) != client_id:
            return refused("Invalid IdToken Audience.")
        for name in ("nonce", "user_id"):
            given = form.get(name)
            if isinstance(given, str) and given and given != claims.get("sub" if name == "user_id" else name):
                return refused(f"Invalid IdToken {'Subject' if name == 'user_id' else 'Nonce'}.")
        self._record(Call("verify", {"client_id": client_id, "sub": claims.get("sub")}, dict(request.headers), 200,
                          self.clock()))
        return web.json_response(claims)

    async def _link_token(self, request: web.Request) -> web.Response:
        """Issue link token (messaging-api.yml issueLinkToken): no body; {"linkToken"}, valid 10 minutes, once."""
        _, error = await self._authorized_json(request, "link_token")
        if error:
            return error
        user_id = request.match_info["user_id"]
        if user_id not in self.profiles and user_id not in self.followers:
            return web.json_response({"message": "Not found"}, status=404)
        token = secrets.token_urlsafe(24)[:32]
        self.link_tokens[token] = (user_id, self.clock(), False)
        self._record(Call("link_token", {}, dict(request.headers), 200, self.clock(), to=[user_id]))
        return web.json_response({"linkToken": token})

    def account_link(self, link_token: str, nonce: str) -> dict | None:
        """What https://access.line.me/dialog/bot/accountLink?linkToken=…&nonce=… does: the accountLink event for
        the user the token was issued to, "ok" with a reply token when the token is fresh and unused, else
        "failed" without one. None for a token LINE never issued (LINE shows an error page, sends nothing)."""
        found = self.link_tokens.get(link_token)
        if found is None:
            return None
        user_id, issued, used = found
        if used or self.clock() - issued > line_limits.LINK_TOKEN_SECONDS:
            return self.event("accountLink", user_id, reply=False, link={"result": "failed", "nonce": nonce})
        self.link_tokens[link_token] = (user_id, issued, True)
        return self.event("accountLink", user_id, link={"result": "ok", "nonce": nonce})

    async def _unknown(self, request: web.Request) -> web.Response:
        self._violation(f"unknown endpoint {request.method} {request.path}")
        return web.json_response({"message": "Not found"}, status=404)

    # ---- the webhook side -------------------------------------------------------------
    def event(self, kind: str, user_id: str, *, reply: bool = True, source: dict | None = None,
              mode: str = "active", **extra: Any) -> dict:
        event: dict[str, Any] = {
            "type": kind,
            "mode": mode,
            "timestamp": int(time.time() * 1000),
            "source": source or {"type": "user", "userId": user_id},
            "webhookEventId": _event_id(),
            "deliveryContext": {"isRedelivery": False},
        }
        if reply and mode == "active":
            token = secrets.token_hex(16)
            self.reply_tokens[token] = (user_id, self.clock())
            event["replyToken"] = token
        event.update(extra)
        return event

    def follow(self, user_id: str, *, unblocked: bool = False, language: str = "ja", **kw: Any) -> dict:
        if user_id not in self.followers:
            self.followers.append(user_id)
        self.profiles.setdefault(user_id, {"userId": user_id, "displayName": f"Customer {user_id[-4:]}",
                                           "language": language})
        return self.event("follow", user_id, follow={"isUnblocked": unblocked}, **kw)

    def unfollow(self, user_id: str) -> dict:
        if user_id in self.followers:
            self.followers.remove(user_id)
        return self.event("unfollow", user_id, reply=False)

    def text(self, user_id: str, text: str, **kw: Any) -> dict:
        message = {"type": "text", "id": str(secrets.randbits(60)), "text": text, "quoteToken": secrets.token_hex(8)}
        return self.event("message", user_id, message=message, **kw)

    def sticker(self, user_id: str) -> dict:
        message = {"type": "sticker", "id": str(secrets.randbits(60)), "packageId": "446", "stickerId": "1988",
                   "stickerResourceType": "STATIC", "quoteToken": secrets.token_hex(8)}
        return self.event("message", user_id, message=message)

    def image(self, user_id: str) -> dict:
        message = {"type": "image", "id": str(secrets.randbits(60)), "quoteToken": secrets.token_hex(8),
                   "contentProvider": {"type": "line"}}
        return self.event("message", user_id, message=message)

    def postback(self, user_id: str, data: str, params: dict[str, str] | None = None) -> dict:
        """A tap on a postback button; `params` as a datetime picker sends them ({"date": "1990-04-12"})."""
        postback: dict[str, Any] = {"data": data}
        if params is not None:
            postback["params"] = params
        return self.event("postback", user_id, postback=postback)

    def pick_date(self, user_id: str, data: str, day: str) -> dict:
        """The datetime picker (mode "date") answered with a day, YYYY-MM-DD."""
        return self.postback(user_id, data, {"date": day})

    def payload(self, *events: dict) -> bytes:
        return json.dumps({"destination": BOT_USER_ID, "events": list(events)}, ensure_ascii=False).encode()

    async def send(self, *events: dict) -> int:
        """Sign and deliver events in one webhook; returns the bot's HTTP status."""
        return await self.send_raw(self.payload(*events))

    async def send_raw(self, body: bytes, signature: str | None = None, headers: dict | None = None) -> int:
        sent = {"Content-Type": "application/json",
                "X-Line-Signature": signature if signature is not None else sign(body, self.secret)}
        sent.update(headers or {})
        async with self._session.post(self.bot_url, data=body, headers=sent) as response:
            await response.read()
            return response.status

    # ---- reading what the bot said ----------------------------------------------------
    def said_to(self, user_id: str, since: int = 0) -> list[dict]:
        """Messages that reached one user, in order."""
        return [m for c in self.calls[since:] if c.status == 200 and user_id in c.to
                for m in c.body.get("messages", [])]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = predicate()
            if got:
                return got
            await asyncio.sleep(0.02)
        return predicate()


def text_of(messages: list[dict]) -> str:
    """All human-readable text in messages (Flex included), joined by newlines."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("text", "altText", "label", "uri", "originalContentUrl") and isinstance(value, str):
                    parts.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(messages)
    return "\n".join(parts)
