"""Finding members for staff from one search box: a LINE user id, a member QR token, an invite code or link
(rewards/lookup.py), a shop customer id (an account link, rewards/links.py), or part of a nickname.

The nickname is what the member told the bot (プロフィール); staff see it whether or not the member agreed
to show it to other members (rewards/names.py governs only what other members see). A nickname has no
index: the search reads the members' records in chunks, at most `scan_at_most` of them, which is quick
for a shop's thousands of members; a larger shop finds a member by code, QR or customer id at once.
"""
from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING

from rewards import keys
from rewards.lookup import find_member

if TYPE_CHECKING:
    from rewards.program import Program

CHUNK = 1000
MAX_QUERY = 300


def folded(text: str) -> str:
    """For comparing names: full-width and half-width alike (NFKC), case ignored."""
    return unicodedata.normalize("NFKC", text).casefold().strip()


async def search(program: Program, query: str, limit: int = 20, scan_at_most: int = 200_000) -> list[str]:
    """User ids of the members the query names: an exact match (id, token, code, customer) first, then
    members whose nickname contains it."""
    query = query.strip()[:MAX_QUERY]
    if not query:
        return []
    found: list[str] = []
    exact = await find_member(program, query)
    if exact is not None:
        found.append(exact)
    if len(query) <= 100:
        linked = await program.links.user_of(query)
        if linked is not None and linked not in found:
            found.append(linked)
    wanted = folded(query)
    uids = (await program.member_ids())[:scan_at_most]
    nickname = keys.field("nickname")
    for start in range(0, len(uids), CHUNK):
        chunk = uids[start:start + CHUNK]
        async with program.redis.pipeline(transaction=False) as pipe:
            for uid in chunk:
                pipe.hget(keys.member(uid), nickname)
            names = await pipe.execute()
        for uid, name in zip(chunk, names, strict=True):
            if name and wanted in folded(name.decode()) and uid not in found:
                found.append(uid)
                if len(found) >= limit:
                    return found
    return found[:limit]


async def nicknames(program: Program, uids: list[str]) -> dict[str, str]:
    """The nicknames (as the member gave them) of these members, for staff's lists."""
    if not uids:
        return {}
    async with program.redis.pipeline(transaction=False) as pipe:
        for uid in uids:
            pipe.hget(keys.member(uid), keys.field("nickname"))
        names = await pipe.execute()
    return {uid: name.decode() for uid, name in zip(uids, names, strict=True) if name}
