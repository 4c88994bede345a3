"""Typed postback data, in the spirit of aiogram's CallbackData: each button's data is a small class with a
prefix, packed to `prefix|field|…|mac` and unpacked back into the class.

The mac (an HMAC of the rest, keyed by the channel secret) makes the data tamper-checked: LINE sends postback
data back to us as the user's client gave it, so anything hand-edited or forged is refused, not acted on.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
from typing import Any, ClassVar, TypeVar

from bot.line.limits import POSTBACK_DATA_MAX

SEP = "|"
MAC_CHARS = 11  # 64 bits, base64url

T = TypeVar("T", bound="PostbackData")


class TamperedData(ValueError):
    """Postback data with our prefix whose mac does not match: forged, edited or from another channel."""


@dataclasses.dataclass(frozen=True)
class PostbackData:
    """Subclass as a frozen dataclass with a `prefix` and str / int / bool fields."""

    prefix: ClassVar[str]

    def pack(self, key: bytes) -> str:
        parts = [self.prefix]
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            text = ("1" if value else "0") if isinstance(value, bool) else str(value)
            if SEP in text:
                raise ValueError(f"{type(self).__name__}.{field.name} may not contain {SEP!r}")
            parts.append(text)
        body = SEP.join(parts)
        packed = body + SEP + _mac(key, body)
        if len(packed) > POSTBACK_DATA_MAX:
            raise ValueError(f"postback data of {len(packed)} characters (LINE allows {POSTBACK_DATA_MAX})")
        return packed

    @classmethod
    def unpack(cls: type[T], key: bytes, data: str) -> T | None:
        """The data as this class; None when it is not ours; TamperedData when it is ours but forged."""
        parts = data.split(SEP)
        if parts[0] != cls.prefix:
            return None
        fields = dataclasses.fields(cls)
        body, mac = SEP.join(parts[:-1]), parts[-1]
        if len(parts) != len(fields) + 2 or not hmac.compare_digest(mac, _mac(key, body)):
            raise TamperedData(data[:80])
        values: dict[str, Any] = {}
        for field, text in zip(fields, parts[1:-1], strict=True):
            kind = field.type if isinstance(field.type, type) else {"int": int, "bool": bool}.get(str(field.type), str)
            try:
                values[field.name] = (text == "1") if kind is bool else kind(text)
            except ValueError as error:
                raise TamperedData(data[:80]) from error
        return cls(**values)


def key_for(channel_secret: str) -> bytes:
    """A key of its own for postbacks, derived from the channel secret (never the secret itself)."""
    return hashlib.sha256(b"shokai/postback\0" + channel_secret.encode()).digest()


def _mac(key: bytes, body: str) -> str:
    digest = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:MAC_CHARS]
