"""Every link the bot sends starts with PUBLIC_BASE_URL; they are built here and nowhere else."""
from urllib.parse import quote

from bot.config import Settings


def invite_link(settings: Settings, code: str) -> str:
    return f"{settings.public_base_url}/i/{code}"


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
