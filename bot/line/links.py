"""Every link the bot sends starts with PUBLIC_BASE_URL; they are built here and nowhere else."""
from urllib.parse import quote

from bot.config import Settings


def invite_link(settings: Settings, code: str) -> str:
    """What the bot sends (and the QR encodes): the LIFF app with LIFF_ID set, else the plain invite page."""
    if settings.liff_id:
        return liff_invite_link(settings.liff_id, code)
    return f"{settings.public_base_url}/i/{code}"


def liff_invite_link(liff_id: str, code: str) -> str:
    """LINE opens the LIFF app's endpoint (PUBLIC_BASE_URL/liff/invite) with this query, after liff.init()."""
    return f"https://liff.line.me/{quote(liff_id, safe='')}?code={quote(code, safe='')}"


def qr_image_url(settings: Settings, code: str) -> str:
    return f"{settings.public_base_url}/qr/{code}.png"


def oa_message_link(basic_id: str, text: str) -> str:
    """Opens the account's chat in LINE with `text` typed in; the person taps send."""
    return f"https://line.me/R/oaMessage/{quote(basic_id, safe='')}/?{quote(text, safe='')}"


def add_friend_link(basic_id: str) -> str:
    return f"https://line.me/R/ti/p/{quote(basic_id, safe='')}"


def coupon_link(settings: Settings, token: str) -> str:
    return f"{settings.public_base_url}/c/{token}"


def coupon_qr_url(settings: Settings, token: str) -> str:
    return f"{settings.public_base_url}/c/{token}.png"


def member_qr_url(settings: Settings, token: str) -> str:
    return f"{settings.public_base_url}/m/{token}.png"
