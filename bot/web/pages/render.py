"""What the phone pages share: HTML from the templates in assets/pages, the page's language, QR images."""
from __future__ import annotations

import base64
import functools
import hashlib
import html
import io
import re
from string import Template

import qrcode
from aiohttp import web
from qrcode.constants import ERROR_CORRECT_M

from bot.config import ASSETS, ConfigError
from bot.line.i18n import Texts


@functools.cache
def _template(name: str) -> Template:
    return Template((ASSETS / "pages" / name).read_text(encoding="utf-8"))


_STYLE = re.compile(r"<style>(.*?)</style>", re.S)


@functools.cache
def style_sources() -> tuple[str, ...]:
    """The Content-Security-Policy sources ('sha256-…') of every inline <style> of the templates, so the pages
    need no 'unsafe-inline'. Read at start-up; a template whose <style> takes a $value could not be hashed
    ahead, so it stops start-up with one line."""
    sources = []
    for path in sorted((ASSETS / "pages").glob("*.html")):
        for block in _STYLE.findall(path.read_text(encoding="utf-8")):
            template = Template(block)
            if template.get_identifiers():
                raise ConfigError(f"assets/pages/{path.name}: a <style> may not take $values (the pages' "
                                  "Content-Security-Policy carries its hash, fixed at start-up)")
            digest = hashlib.sha256(template.substitute().encode("utf-8")).digest()
            sources.append(f"'sha256-{base64.b64encode(digest).decode()}'")
    return tuple(dict.fromkeys(sources))


# the icon of assets/pages/notice.html, the page for every "not here" and "not now"
NOT_FOUND = "🔍"
WAIT = "⏳"


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
