"""Where deliveries may go: https anywhere, http only to this machine (local tools and tests). Kept free of
other imports, so bot/config.py checks FORWARD_WEBHOOK_URLS with the same rule as the webhooks API."""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

MAX_URL = 2_000


def refusal(url: str) -> str | None:
    """Why `url` cannot be a delivery target, or None when it can."""
    if len(url) > MAX_URL:
        return f"at most {MAX_URL} characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 — a bad port raises here
    except ValueError:
        return "not a URL"
    if not host or parts.scheme not in ("https", "http"):
        return "must be an https URL (http only to a loopback address)"
    if parts.fragment or parts.username or parts.password:
        return "must have no #fragment and no user:password@"
    if parts.scheme == "http" and not is_loopback(host):
        return "must be https (http is allowed only to a loopback address: localhost, 127.0.0.1, ::1)"
    return None


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
