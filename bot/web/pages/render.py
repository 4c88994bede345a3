"""What the phone pages share: HTML from the templates in assets/pages, the page's language, QR images."""
from __future__ import annotations

import functools
import html
import io
from string import Template

import qrcode
from aiohttp import web
from qrcode.constants import ERROR_CORRECT_M

from bot.config import ASSETS
from bot.line.i18n import Texts


@functools.cache
def _template(name: str) -> Template:
    return Template((ASSETS / "pages" / name).read_text(encoding="utf-8"))


def render(name: str, **values: object) -> str:
    """The template `name` with every value HTML-escaped."""
    return _template(name).substitute({k: html.escape(str(v), quote=True) for k, v in values.items()})


def page_language(request: web.Request, texts: Texts) -> str:
    """Japanese unless the browser prefers English (or another locale we have) over Japanese."""
    for part in request.headers.get("Accept-Language", "").split(","):
        tag = part.split(";")[0].strip()
        if tag:
            return texts.lang_for(tag)
    return "ja"


@functools.lru_cache(maxsize=4096)
def qr_png(data: str) -> bytes:
    """A QR code of exactly `data`, big enough to scan from a phone screen; cached per link."""
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=10, border=4)
    qr.add_data(data)
    qr.make(fit=True)
    out = io.BytesIO()
    qr.make_image(fill_color="black", back_color="white").save(out, format="PNG")
    return out.getvalue()
