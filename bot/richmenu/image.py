"""A rich menu's image: the one given beside its file, checked, or one drawn with Pillow from its colour and labels."""
from __future__ import annotations

import io
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from bot.line.limits import RICH_MENU_IMAGE_MAX_BYTES
from bot.richmenu.spec import Menu, RichMenuError

log = logging.getLogger(__name__)

_FONT_PATHS = (  # Noto CJK where Debian (fonts-noto-cjk), Fedora and Arch put it; then macOS
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Bold.ttc",
    "/System/Library/Fonts/ヒラギノ角ゴシック W6.ttc",
)


def find_cjk_font() -> str | None:
    """A font with Japanese glyphs: Noto CJK at its usual places, else whatever fontconfig knows for ja."""
    for path in _FONT_PATHS:
        if Path(path).is_file():
            return path
    if shutil.which("fc-list"):
        try:
            listed = subprocess.run(["fc-list", ":lang=ja", "file"], capture_output=True, text=True,
                                    timeout=10, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        files = sorted({line.split(":")[0].strip() for line in listed.splitlines() if line.strip()},
                       key=lambda f: ("Sans" not in f, "Bold" not in f, f))
        return files[0] if files else None
    return None


def _font(path: str | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if path is None:
        return ImageFont.load_default(size)
    return ImageFont.truetype(path, size, index=0)  # index 0 of a Noto CJK collection is the JP face


def _fitting(path: str | None, text: str, size: int, max_width: int) -> Any:
    while True:
        font = _font(path, size)
        if size <= 12 or font.getlength(text) <= max_width:
            return font
        size = int(size * 0.9)


def render_image(menu: Menu) -> tuple[bytes, str]:
    """The menu's image: each area a tile in the brand colour, the Japanese label big, the English small."""
    font_path = find_cjk_font()
    if font_path is None:
        log.warning("no Japanese font found (install fonts-noto-cjk): the rich menu image uses Pillow's "
                    "default font, which has no Japanese glyphs")
    image = Image.new("RGB", (menu.width, menu.height), menu.colour)
    draw = ImageDraw.Draw(image)
    r, g, b = menu.colour
    ink = (31, 45, 61) if 0.299 * r + 0.587 * g + 0.114 * b > 170 else (255, 255, 255)
    for n, area in enumerate(menu.areas):
        x, y, w, h = area.bounds
        # neighbouring tiles a shade apart, so each tap target reads as its own button
        shade = 1.0 if (n + n // 3) % 2 == 0 else 0.9
        draw.rectangle((x, y, x + w - 1, y + h - 1), fill=tuple(int(c * shade) for c in menu.colour),
                       outline=(255, 255, 255), width=4)
        big = _fitting(font_path, area.ja, h // 6, int(w * 0.86))
        small = _fitting(font_path, area.en, h // 12, int(w * 0.86))
        cx, cy = x + w // 2, y + h // 2
        draw.text((cx, cy - h // 20), area.ja, font=big, fill=ink, anchor="ms")
        if area.en:
            draw.text((cx, cy + h // 20), area.en, font=small, fill=ink, anchor="mt")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    if out.tell() <= RICH_MENU_IMAGE_MAX_BYTES:
        return out.getvalue(), "image/png"
    for quality in (90, 80, 70, 60, 50):  # a photo-like brand image: JPEG is how LINE suggests fitting 1 MB
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=quality)
        if out.tell() <= RICH_MENU_IMAGE_MAX_BYTES:
            return out.getvalue(), "image/jpeg"
    raise RichMenuError(f"{menu.source.name}: the generated image does not fit in 1 MB")


def menu_image(menu: Menu) -> tuple[bytes, str]:
    """The image given beside the menu file (`customer.png` / `.jpg`), checked; else a generated one."""
    for suffix in (".png", ".jpg", ".jpeg"):
        given = menu.source.with_suffix(suffix)
        if given.is_file():
            return check_image(given.read_bytes(), menu, given.name)
    return render_image(menu)


def check_image(data: bytes, menu: Menu, name: str) -> tuple[bytes, str]:
    if len(data) > RICH_MENU_IMAGE_MAX_BYTES:
        raise RichMenuError(f"{name} is {len(data):,} bytes; LINE takes at most 1 MB")
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, size = image.format, image.size
    except OSError as exc:
        raise RichMenuError(f"{name} is not an image Pillow can read: {exc}") from exc
    if kind not in ("PNG", "JPEG"):
        raise RichMenuError(f"{name} is {kind}; LINE takes PNG or JPEG")
    if size != (menu.width, menu.height):
        raise RichMenuError(f"{name} is {size[0]}×{size[1]}; the menu is {menu.width}×{menu.height}")
    return data, "image/png" if kind == "PNG" else "image/jpeg"
