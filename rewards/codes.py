"""Invite codes: short, random, easy to read aloud and type, never derived from a LINE user id."""
from __future__ import annotations

import re
import secrets
import unicodedata

# No 0/O or 1/I: nobody has to guess which one they are looking at.
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
LENGTH = 8  # 32**8 ≈ 1.1e12 codes; guessing is rate-limited on top
_DIGITS = set("23456789")

# A code inside a message: 8 code characters, optionally split 4-4 by a space or hyphen.
_CANDIDATE = re.compile(r"(?<![0-9A-Z])([2-9A-HJ-NP-Z]{4})[ \-]?([2-9A-HJ-NP-Z]{4})(?![0-9A-Z])")
# A keyword right before a code lets an all-letter code count too ("招待コード: ABCDEFGH", "code ABCDEFGH").
_AFTER_KEYWORD = re.compile(r"(?:招待コード|紹介コード|コード|(?<![A-Z])CODE(?![A-Z]))\s*[:：は]?\s*"
                            r"([2-9A-HJ-NP-Z]{4})[ \-]?([2-9A-HJ-NP-Z]{4})(?![0-9A-Z])")


def new_code() -> str:
    """A fresh random code with at least one digit and one letter, so ordinary words never look like one."""
    while True:
        code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        if _DIGITS & set(code) and set(code) - _DIGITS:
            return code


def normalise(text: str) -> str:
    """Full-width to half-width, upper case: what the person typed, the way codes are stored."""
    return unicodedata.normalize("NFKC", text).upper()


def find_code(text: str) -> str | None:
    """The invite code a message carries, if it looks like it carries one.

    A bare 8-character token counts only when it mixes digits and letters (so "REFERRAL" is not a code);
    right after a keyword such as 招待コード or "code", any 8 code characters count.
    """
    normal = normalise(text)
    after = _AFTER_KEYWORD.search(normal)
    if after:
        return after.group(1) + after.group(2)
    for match in _CANDIDATE.finditer(normal):
        code = match.group(1) + match.group(2)
        if _DIGITS & set(code) and set(code) - _DIGITS:
            return code
    return None


def display(code: str) -> str:
    """ABCD-2345: easier to read than eight characters in a row."""
    return f"{code[:4]}-{code[4:]}"
