"""How a member may be named to other members (the referral status, the leaderboard): their nickname only
when they consented to show it, else a masked label every member has and keeps. Pure."""
from __future__ import annotations

import hashlib

from rewards import keys
from rewards.codes import ALPHABET

NAME_FIELDS = [keys.field("nickname"), keys.field("nickname_consent")]  # what shown_nickname reads, in order
LABEL_LENGTH = 4


def shown_nickname(nickname: bytes | str | None, consent: bytes | str | None) -> str | None:
    """The nickname as read from the member's record (NAME_FIELDS), when its member consented to show it."""
    if not nickname or consent not in (b"1", "1"):
        return None
    return nickname.decode() if isinstance(nickname, bytes) else nickname


def masked_label(user_id: str) -> str:
    """Four code characters from a hash of the user id: the same member always gets the same label, whether
    or not they have an invite code yet, and it reveals neither the user id nor the code."""
    digest = hashlib.sha256(user_id.encode()).digest()
    return "".join(ALPHABET[b % len(ALPHABET)] for b in digest[:LABEL_LENGTH])
