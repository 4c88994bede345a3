"""The Messaging API, through line-bot-sdk's async client: retries, retry keys and timeouts done once, here."""
from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from typing import Any
from urllib.parse import quote

from aiohttp import ClientError, ClientSession, ClientTimeout
from linebot.v3.messaging import (
    ApiException,
    AsyncApiClient,
    AsyncMessagingApi,
    Configuration,
)

from bot.config import Settings
from bot.infra.metrics import Metrics

log = logging.getLogger(__name__)

RETRY_KEY_NAMESPACE = uuid.UUID("5d1c7f3e-7b1a-4b8e-9a53-2a6f0c1d9e47")


def retry_key(*parts: object) -> str:
    """The same parts give the same key, so a retried or re-run send is one send to LINE (409 after)."""
    return str(uuid.uuid5(RETRY_KEY_NAMESPACE, ":".join(map(str, parts))))


class LineRejected(Exception):
    """LINE refused a request for good (4xx other than 409/429): retrying cannot help."""

    def __init__(self, status: int, body: str):
        super().__init__(f"LINE answered {status}: {body[:300]}")
        self.status = status
        self.body = body


class MonthlyLimitReached(LineRejected):
    """The plan's message quota is used up: pushes fail until next month or a plan change."""


class LineClient:
    """Created inside the running loop (the SDK opens an aiohttp session) and closed on shutdown."""

    def __init__(self, settings: Settings, metrics: Metrics):
        self.settings = settings
        self.metrics = metrics
        configuration = Configuration(access_token=settings.channel_access_token, host=settings.line_api_base_url)
        self._client = AsyncApiClient(configuration)
        self.api = AsyncMessagingApi(self._client)
        self._basic_id = settings.line_basic_id
        # reply/push/multicast, the hot path: our message dicts are already LINE's JSON, so they go out as
        # they are. Through the SDK each one was parsed into pydantic models and serialised back, and the
        # answer parsed into models we never read: about 1.7 ms of CPU per send (docs/benchmarks.md).
        self._messages_session = ClientSession(
            headers={"Authorization": f"Bearer {settings.channel_access_token}", "User-Agent": self._client.user_agent},
            timeout=ClientTimeout(total=settings.line_timeout_seconds))

    async def close(self) -> None:
        await self._messages_session.close()
        await self._client.close()

    async def _send(self, endpoint: str, body: dict, retry_key: str | None = None) -> None:
        """POST a message request; LINE's refusals raise ApiException like the SDK's, so callers are unchanged."""
        headers = {"Content-Type": "application/json"}
        if retry_key is not None:
            headers["X-Line-Retry-Key"] = retry_key
        async with self._messages_session.post(f"{self.settings.line_api_base_url}/{endpoint}", data=json.dumps(body, ensure_ascii=False).encode(),
                                               headers=headers) as response:
            text = await response.text()
            if response.status >= 300:
                error = ApiException(status=response.status, reason=response.reason)
                error.body = text
                raise error

    def _count(self, endpoint: str, status: int | str) -> None:
        self.metrics.line_calls.labels(endpoint, str(status)).inc()

    async def reply(self, reply_token: str, messages: list[dict]) -> bool:
        """True when LINE took the reply, or may have: an attempt that timed out or met a 5xx may have landed,
        and a reply has no retry key, so sending it again (or pushing it) risks a double. False when the token
        was refused (used or expired) before any attempt of ours could have used it."""
        request = {"replyToken": reply_token, "messages": messages}
        may_have_landed = False
        for attempt in range(self.settings.line_retry_attempts):
            try:
                await self._send("v2/bot/message/reply", request)
                self._count("reply", 200)
                return True
            except ApiException as exc:
                self._count("reply", exc.status)
                if exc.status == 400 and "reply token" in (exc.body or "").lower():
                    return may_have_landed  # used: by our own earlier attempt, if one may have landed
                if exc.status != 429 and exc.status < 500:
                    raise LineRejected(exc.status, exc.body or "") from exc
                may_have_landed = may_have_landed or exc.status >= 500
            except (asyncio.TimeoutError, OSError) as exc:
                self._count("reply", "timeout")
                log.warning("reply timed out (%s); trying again", exc)
                may_have_landed = True
            await self._backoff(attempt)
        return may_have_landed

    async def push(self, to: str, messages: list[dict], key: str) -> None:
        request = {"to": to, "messages": messages}
        await self._with_retry_key("push", key, lambda: self._send("v2/bot/message/push", request, key))

    async def multicast(self, to: list[str], messages: list[dict], key: str) -> None:
        request = {"to": to, "messages": messages}
        await self._with_retry_key("multicast", key, lambda: self._send("v2/bot/message/multicast", request, key))

    async def _with_retry_key(self, endpoint: str, key: str, call: Any) -> None:
        """429 and 5xx back off and retry with the same key; 409 means an earlier attempt landed."""
        last: Exception | None = None
        for attempt in range(self.settings.line_retry_attempts):
            try:
                await call()
                self._count(endpoint, 200)
                return
            except ApiException as exc:
                self._count(endpoint, exc.status)
                if exc.status == 409:
                    return
                body = exc.body or ""
                if exc.status == 429 and "monthly limit" in body:
                    raise MonthlyLimitReached(exc.status, body) from exc
                if exc.status != 429 and exc.status < 500:
                    raise LineRejected(exc.status, body) from exc
                last = exc
            except (asyncio.TimeoutError, OSError) as exc:
                self._count(endpoint, "timeout")
                last = exc
            log.warning("%s failed (attempt %d, key %s): %s", endpoint, attempt + 1, key, last)
            await self._backoff(attempt)
        raise RuntimeError(f"{endpoint} still failing after {self.settings.line_retry_attempts} attempts") from last

    async def _backoff(self, attempt: int) -> None:
        base = self.settings.line_retry_base_seconds
        await asyncio.sleep(base * (2 ** attempt) * (0.5 + random.random()))

    async def profile_language(self, user_id: str) -> str | None:
        # on every follow: read straight from LINE's JSON, as the sends are (the SDK's models cost ~1 ms here)
        try:
            async with self._messages_session.get(
                    f"{self.settings.line_api_base_url}/v2/bot/profile/{quote(user_id, safe='')}") as response:
                self._count("profile", response.status)
                if response.status != 200:
                    return None  # not a friend, or no consent: we simply fall back to Japanese
                language = (await response.json(content_type=None)).get("language")
                return language if isinstance(language, str) else None
        except (asyncio.TimeoutError, OSError, ClientError, ValueError, AttributeError):
            self._count("profile", "timeout")
            return None

    async def show_loading(self, user_id: str, seconds: int = 5) -> None:
        # before the slower answers, so on many events: posted as JSON like the sends, without the SDK's models
        try:
            await self._send("v2/bot/chat/loading/start", {"chatId": user_id, "loadingSeconds": seconds})
        except (ApiException, asyncio.TimeoutError, OSError, ClientError) as exc:
            log.debug("loading animation not shown: %s", exc)  # cosmetic only

    async def issue_link_token(self, user_id: str) -> str:
        """A link token for LINE's account link (valid 10 minutes, once). Retried on 429/5xx and timeouts:
        issuing a second token is harmless (an unused one simply expires)."""
        url = f"{self.settings.line_api_base_url}/v2/bot/user/{quote(user_id, safe='')}/linkToken"
        last: Exception | None = None
        for attempt in range(self.settings.line_retry_attempts):
            try:
                async with self._messages_session.post(url) as response:
                    self._count("link_token", response.status)
                    text = await response.text()
                    if response.status == 200:
                        token = json.loads(text).get("linkToken")
                        if isinstance(token, str) and token:
                            return token
                        raise LineRejected(response.status, text)
                    if response.status != 429 and response.status < 500:
                        raise LineRejected(response.status, text)
                    last = RuntimeError(f"LINE answered {response.status}")
            except (asyncio.TimeoutError, OSError, ClientError) as exc:
                self._count("link_token", "timeout")
                last = exc
            await self._backoff(attempt)
        raise RuntimeError(f"link token still failing after {self.settings.line_retry_attempts} attempts") from last

    async def basic_id(self) -> str:
        """The account's LINE ID (@xxxx): from LINE_BASIC_ID, else asked of LINE once."""
        if self._basic_id is None:
            info = await self.api.get_bot_info(_request_timeout=self.settings.line_timeout_seconds)
            self._basic_id = info.basic_id
        return self._basic_id
