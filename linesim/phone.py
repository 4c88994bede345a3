"""The console's phone browser and camera: what a tapped link is (classify_uri), a fetched page made
viewable inside the console (relative resources mapped back to the bot), and QR decoding for scanned codes."""
from __future__ import annotations

import html
import re
from collections.abc import Callable
from urllib.parse import parse_qs, unquote, urljoin, urlsplit


# ---- links ------------------------------------------------------------------------------
def under(url: str, base: str) -> bool:
    """Whether url is base itself or a path/query below it."""
    return bool(base) and (url == base or url.startswith((base + "/", base + "?")))


def classify_uri(uri: str) -> dict:
    """What tapping a LINE URL scheme link does on a phone with LINE installed (the kinds the
    console simulates); anything else is {"kind": "other"}."""
    parts = urlsplit(uri)
    if parts.scheme == "https" and parts.netloc == "liff.line.me":
        # https://liff.line.me/{LIFF ID}[/path][?query]: LINE opens the LIFF app's endpoint in its LIFF browser
        liff_id, _, path = parts.path.lstrip("/").partition("/")
        return {"kind": "liff", "liff_id": unquote(liff_id), "path": "/" + path if path else "",
                "query": parts.query}
    if parts.scheme == "https" and parts.netloc in ("line.me", "www.line.me"):
        path = parts.path
        if path.startswith("/R/oaMessage/"):
            # https://line.me/R/oaMessage/{LINE ID}/?{percent-encoded text}
            account = unquote(path[len("/R/oaMessage/"):].strip("/"))
            return {"kind": "oaMessage", "account": account, "text": unquote(parts.query)}
        if path.startswith(("/R/ti/p/", "/ti/p/")):
            return {"kind": "addFriend", "account": unquote(path.split("/ti/p/", 1)[1].strip("/"))}
        if path.rstrip("/") == "/R/share":
            return {"kind": "share", "text": parse_qs(parts.query).get("text", [""])[0]}
        if path.startswith("/R/msg/text/"):  # the older share scheme
            return {"kind": "share", "text": unquote(parts.query)}
    return {"kind": "other"}


def failure_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__  # a timeout's message is empty


# ---- the phone browser ------------------------------------------------------------------
# Injected into every page shown in the sandboxed iframe: a tap on a link is handed to the
# console (which knows which customer is browsing) instead of navigating the frame.
_TAP_SCRIPT = """<script>
document.addEventListener("click", function (event) {
  var link = event.target instanceof Element ? event.target.closest("a[href]") : null;
  if (!link) { return; }
  event.preventDefault();
  parent.postMessage({shokaiTap: link.href}, "*");
}, true);
</script>"""
_RESOURCE_TAG = re.compile(r"<(?:img|script|link|source|video|audio|input)\b[^>]*>", re.IGNORECASE)
_RESOURCE_ATTR = re.compile(r"""(\s(?:src|href|poster)\s*=\s*)("[^"]*"|'[^']*'|[^\s>"']+)""", re.IGNORECASE)
_HEAD_OPEN = re.compile(r"<head\b[^>]*>", re.IGNORECASE)


def with_tap_script(body: str) -> str:
    """A LIFF page as the console serves it (from its own origin): its links handed to the console too."""
    head = _HEAD_OPEN.search(body)
    return body[:head.end()] + _TAP_SCRIPT + body[head.end():] if head else _TAP_SCRIPT + body


def page_document(body: str, *, base: str, rewrite_resource: Callable[[str], str]) -> str:
    """Prepare a page of the bot's for the phone browser's srcdoc iframe.

    Links stay as they are and resolve against the page's public URL (an injected <base>),
    so a tap reports the same URL a phone would open. Resources (images, styles, scripts)
    are pointed at the console's proxy because the public origin may not be reachable from
    here. Regular expressions are enough: the page is the bot's own simple HTML."""
    def fix_tag(tag: re.Match[str]) -> str:
        def fix_attr(attr: re.Match[str]) -> str:
            raw = attr.group(2).strip("\"'")
            target = rewrite_resource(urljoin(base, html.unescape(raw)))
            return attr.group(1) + '"' + html.escape(target, quote=True) + '"'
        return _RESOURCE_ATTR.sub(fix_attr, tag.group(0))

    body = _RESOURCE_TAG.sub(fix_tag, body)
    inject = f'<base href="{html.escape(base, quote=True)}">{_TAP_SCRIPT}'
    head = _HEAD_OPEN.search(body)
    if head:
        return body[:head.end()] + inject + body[head.end():]
    return inject + body


def plain_document(title: str, content: str) -> str:
    """A page of the console's own (errors, plain text answers); everything is escaped."""
    return ("<!doctype html><meta charset='utf-8'><body style='font:14px sans-serif;padding:12px'>"
            f"<h3>{html.escape(title)}</h3><pre style='white-space:pre-wrap'>{html.escape(content)}</pre>")


def image_document(src: str) -> str:
    return ("<!doctype html><meta charset='utf-8'><body style='margin:0;background:#222'>"
            f"<img src=\"{html.escape(src, quote=True)}\" style='display:block;max-width:100%;margin:auto'>")


# ---- QR decoding (optional) -------------------------------------------------------------
def decode_qr(png: bytes) -> str | None:
    """The text of a QR code in an image, or None. Uses OpenCV when it is installed (the test
    extras have it); the console falls back to pairing the image with the link next to it."""
    try:
        import cv2  # type: ignore[import-not-found]
        import numpy  # type: ignore[import-not-found]
    except ImportError:
        return None
    image = cv2.imdecode(numpy.frombuffer(png, numpy.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None
    # The classic detector misses about one code in 50 of ours (it finds no corners); the ArUco-based one
    # read 3,000 of 3,000, so it goes first and the classic one is the second try.
    for detector in (cv2.QRCodeDetectorAruco(), cv2.QRCodeDetector()):
        text, _, _ = detector.detectAndDecode(image)
        if text:
            return str(text)
    return None
