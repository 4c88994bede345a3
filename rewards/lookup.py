"""Finding a member from what staff typed or pasted: a LINE user id, the member QR's token (shown on the
customer's points card, scanned by staff), an invite code (or its link).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rewards import codes

if TYPE_CHECKING:
    from rewards.program import Program

USER_ID = re.compile(r"U[0-9a-f]{32}")


async def member_from_token(program: Program, text: str) -> str | None:
    """The member a member-QR token names (the QR on the points card carries just the token)."""
    return await program.member_by_token(text)


async def find_member(program: Program, text: str) -> str | None:
    """A member's user id from a user id, a member token, an invite code or an invite link; None: no one."""
    text = text.strip()
    if USER_ID.fullmatch(text):
        return text if await program.exists(text) else None
    by_token = await member_from_token(program, text)
    if by_token:
        return by_token
    code = codes.find_code(text) or _bare_code(text)
    return await program.owner_of(code) if code else None


def _bare_code(text: str) -> str | None:
    """An all-letter code typed alone (find_code wants a digit unless a keyword comes first)."""
    tail = codes.normalise(text).rstrip("/").rsplit("/", 1)[-1].replace("-", "").replace(" ", "")
    return tail if len(tail) == codes.LENGTH and set(tail) <= set(codes.ALPHABET) else None
