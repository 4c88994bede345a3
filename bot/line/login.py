"""LINE Login: verifying the ID token a LIFF page sends, with LINE's own verify endpoint.

`POST {LINE_API_BASE_URL}/oauth2/v2.1/verify` (form fields `id_token`, `client_id`) answers 200 with the
token's claims, or 400 `{"error": "invalid_request", "error_description": …}` for a token it refuses (forged,
expired, or issued to another channel). The user id comes only from the answer's `sub`: nothing the page
itself says about the person is trusted. `aud` is checked once more here, against our channel, so a verify
answer for another channel can never attribute anyone.

Its own aiohttp session (no channel access token in its headers: this endpoint takes none), a short timeout,
and no retry: the person is waiting on the page, which can simply try again.
"""
from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

from aiohttp import ClientError, ClientSession, ClientTimeout

from bot.config import Settings
from bot.infra.metrics import Metrics

log = logging.getLogger(__name__)

VERIFY_PATH = "/oauth2/v2.1/verify"
VERIFY_TIMEOUT_SECONDS = 5.0
ID_TOKEN_MAX = 4096  # a LINE ID token is a JWT of well under 2 KB; anything longer is not one
USER_ID = re.compile(r"U[0-9a-f]{32}")


class IdTokenRefused(Exception):
    """LINE (or our own check of its answer) refused the token: forged, expired, or for another channel."""


class LoginUnavailable(Exception):
    """LINE's verify endpoint did not answer usefully (down, timed out, 5xx, 429): try again later."""


@dataclass(frozen=True)
class IdToken:
    sub: str  # the LINE user id, for this provider
    aud: str  # the channel the token was issued to
    exp: int  # unix seconds


class LoginClient:
    """Made inside the running loop and closed on shutdown, like bot.line.client.LineClient."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None):
        self.settings = settings
        self.metrics = metrics
        self._session = ClientSession(timeout=ClientTimeout(total=min(VERIFY_TIMEOUT_SECONDS,
                                                                      settings.line_timeout_seconds)))

    async def close(self) -> None:
        await self._session.close()

    def _count(self, status: int | str) -> None:
        if self.metrics is not None:
            self.metrics.line_calls.labels("verify_id_token", str(status)).inc()

    async def verify(self, id_token: str) -> IdToken:
        """The token's subject, as LINE vouches for it; IdTokenRefused or LoginUnavailable otherwise."""
        channel = self.settings.line_login_channel_id
        if not channel:
            raise LoginUnavailable("LINE_LOGIN_CHANNEL_ID is not set")
        if not id_token or len(id_token) > ID_TOKEN_MAX:
            raise IdTokenRefused("not an ID token")
        url = self.settings.line_api_base_url + VERIFY_PATH
        try:
            async with self._session.post(url, data={"id_token": id_token, "client_id": channel}) as response:
                status = response.status
                body = await response.json(content_type=None)
        except (asyncio.TimeoutError, OSError, ClientError) as exc:
            self._count("timeout")
            raise LoginUnavailable(f"LINE's verify did not answer: {exc or type(exc).__name__}") from exc
        except ValueError as exc:  # not JSON: a proxy's error page, never LINE's answer
            self._count("bad_answer")
            raise LoginUnavailable("LINE's verify answered something that is not JSON") from exc
        self._count(status)
        if status == 400 or status == 401:
            description = body.get("error_description") if isinstance(body, dict) else None
            raise IdTokenRefused(str(description or body)[:200])
        if status != 200 or not isinstance(body, dict):
            raise LoginUnavailable(f"LINE's verify answered HTTP {status}")
        sub, aud, exp = body.get("sub"), body.get("aud"), body.get("exp")
        if str(aud) != channel:  # LINE checks client_id already; a second look costs nothing
            raise IdTokenRefused(f"the token is for channel {str(aud)[:24]!r}, not ours")
        if not isinstance(sub, str) or not USER_ID.fullmatch(sub):
            raise IdTokenRefused("the token's subject is not a LINE user id")
        return IdToken(sub=sub, aud=str(aud), exp=int(exp) if isinstance(exp, int) else 0)
