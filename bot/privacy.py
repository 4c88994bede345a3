"""A member's data on request, the bot's side: what the plumbing keeps about a user (the pending conversation step,
notices held for quiet hours, the staff sets), exported and erased with the domain's (rewards/privacy.py), and the
short-lived signed link a member opens to read their data (GET /me/data?token=…).

The link's token is the user id and an expiry, signed with an HMAC keyed from the channel secret (never the
secret itself); it holds nothing else and lives DATA_LINK_SECONDS. A changed channel secret only cuts short the
links out at that moment.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import TYPE_CHECKING, Any

from bot.infra import keys as infra_keys

if TYPE_CHECKING:
    from bot.services import Services

DATA_LINK_SECONDS = 15 * 60
MAC_BYTES = 16


def link_key(channel_secret: str) -> bytes:
    return hashlib.sha256(b"shokai/privacy-link\0" + channel_secret.encode()).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def data_token(key: bytes, uid: str, now_ms: int, seconds: int = DATA_LINK_SECONDS) -> str:
    body = f"{uid}.{now_ms // 1000 + seconds}".encode()
    return _b64(body) + "." + _b64(hmac.new(key, body, hashlib.sha256).digest()[:MAC_BYTES])


def token_user(key: bytes, token: str, now_ms: int) -> str | None:
    """The user a data link's token names, None when it is not ours, forged, or expired."""
    if not 0 < len(token) <= 200 or token.count(".") != 1:
        return None
    body_text, mac_text = token.split(".")
    try:
        body, mac = _unb64(body_text), _unb64(mac_text)
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()[:MAC_BYTES]):
        return None
    uid, _, expires = body.decode(errors="replace").partition(".")
    if not expires.isdigit() or int(expires) * 1000 <= now_ms:
        return None
    return uid


def data_url(services: Services, uid: str) -> str:
    token = data_token(link_key(services.settings.channel_secret), uid, services.program.now_ms())
    return f"{services.settings.public_base_url}/me/data?token={token}"


def register(services: Services) -> None:
    """Hand the plumbing's share to every export and erasure, whichever way it comes (API, chat, Shopify, clock)."""
    redis = services.redis

    async def notices_to(uid: str) -> dict[str, dict[str, Any]]:
        held = {}
        async for notice_id, raw in redis.hscan_iter(infra_keys.NOTICES_BODY):
            body = json.loads(raw)
            if body.get("to") == uid:
                held[notice_id.decode()] = body
        return held

    async def export(uid: str) -> dict[str, Any]:
        step = {k.decode(): v.decode() for k, v in (await redis.hgetall(infra_keys.conversation_step(uid))).items()}
        notices = await notices_to(uid)
        staff = bool(await redis.sismember(infra_keys.STAFF, uid))
        staff_menu = bool(await redis.sismember(infra_keys.RICHMENU_STAFF_LINKED, uid))
        held = [key for key, there in ((infra_keys.conversation_step(uid), step),
                                       (infra_keys.NOTICES_BODY, notices), (infra_keys.STAFF, staff),
                                       (infra_keys.RICHMENU_STAFF_LINKED, staff_menu)) if there]
        return {"conversation_step": step or None, "notices_waiting": list(notices.values()),
                "staff": staff or staff_menu, "keys": held}

    async def erase(uid: str) -> None:
        await redis.delete(infra_keys.conversation_step(uid))
        for notice_id in await notices_to(uid):
            async with redis.pipeline(transaction=True) as pipe:
                pipe.zrem(infra_keys.NOTICES_DUE, notice_id)
                pipe.hdel(infra_keys.NOTICES_BODY, notice_id)
                await pipe.execute()
        await redis.srem(infra_keys.STAFF, uid)
        await redis.srem(infra_keys.RICHMENU_STAFF_LINKED, uid)

    services.program.privacy.add_plumbing(export=export, erase=erase)


def dumps(data: Any) -> str:
    """An export as JSON, Japanese as it is (not \\u escapes)."""
    return json.dumps(data, ensure_ascii=False, default=str)
